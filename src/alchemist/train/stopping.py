"""When each trial of a pack stops: divergence (PB-16) and early stopping on its monitor (PB-21).

One object for the K trials of a pack, holding each trial's record of its best epoch — what
PyTorch Lightning's `EarlyStopping` callback is for one model (monitor, min_delta, patience,
its own state). The engine hands it each running trial's epoch row and does what it answers.
"""
from __future__ import annotations

import math
from typing import Callable

DIVERGE_FACTOR = 100.0     # a train loss above 100x the initial loss counts as diverged (PB-16)


def fresh_record() -> dict:
    """A trial's record before its first epoch: `epoch`, `value` (of its monitor), the val_loss
    and val_metric there, `bad` (epochs since it last improved), `state` (its weights then)."""
    return {"epoch": None, "value": None, "val_loss": None, "val_metric": None, "bad": 0, "state": None}


class Stopping:
    """Each trial's best epoch by its own monitor (`monitor`: val_loss, else the selection metric
    in `direction`), and whether it diverged or should stop early."""

    def __init__(self, trials: list[dict], direction: str):
        self.trials, self.direction = trials, direction
        self.best = [fresh_record() for _ in trials]

    @staticmethod
    def diverged(row: dict, initial_loss: float) -> bool:
        """A non-finite loss, or a train loss above DIVERGE_FACTOR × the initial validation loss."""
        return not (math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"])) or \
            row["train_loss"] > DIVERGE_FACTOR * max(initial_loss, 1e-3)

    def observe(self, k: int, epoch: int, row: dict, weights: Callable[[], dict]) -> bool:
        """Record trial k's epoch `row`: an improvement by more than min_delta keeps it as the best
        (with `weights()`, taken only then); True when early stopping is on and the monitor has not
        improved for `patience` epochs."""
        trial, record = self.trials[k], self.best[k]
        by_loss = trial["monitor"] == "val_loss"
        value = row["val_loss"] if by_loss else row["val_metric"]
        sign = 1 if (by_loss or self.direction == "min") else -1
        if record["value"] is None or sign * (record["value"] - value) > trial["min_delta"]:
            record.update(epoch=epoch, value=value, val_loss=row["val_loss"], val_metric=row["val_metric"],
                          bad=0, state=weights())
            return False
        record["bad"] += 1
        return bool(trial["early_stopping"]) and record["bad"] >= trial["patience"]
