"""Fixtures for the search tests: minimal configs and fake results tables (stand-ins for the
aggregate step's output, in the format of alchemist.analysis.tables)."""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping

import pandas as pd

from alchemist.trial import canonical_json

BASE_SPACE = {
    "lr": {"log_uniform": [1.0e-4, 1.0e-1]},
    "weight_decay": {"log_uniform": [1.0e-6, 1.0e-2]},
    "dropout": {"uniform": [0.0, 0.5]},
}


def config(space: Mapping | None = None, stages: list | None = None, pack_size: int = 16,
           train: Mapping | None = None, **search: Any) -> dict:
    """A minimal resolved config: `train:` plus a `search:` section."""
    return {"train": dict(train or {}),
            "search": {"pack_size": pack_size, "space": dict(space or BASE_SPACE),
                       "stages": stages or [{"name": "coarse", "kind": "search",
                                             "sampler": "random", "trials": 8}], **search}}


def results_table(trials: Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]],
                  objective: Callable[[Mapping[str, Any]], float], mode: str = "max",
                  status: Callable[[Mapping[str, Any]], str] = lambda t: "completed") -> pd.DataFrame:
    """One row per trial (a plan's `trials` dict or a list), kept_val_metric = objective(trial)."""
    if isinstance(trials, Mapping):
        trials = trials.values()
    rows = []
    for t in trials:
        value = float(objective(t))
        rows.append({"trial_id": t["trial_id"], "status": status(t), "kept_val_metric": value,
                     "kept_val_loss": -value if mode == "max" else value, "mode": mode,
                     "params_json": canonical_json(t)})
    return pd.DataFrame(rows, columns=["trial_id", "status", "kept_val_metric", "kept_val_loss",
                                       "mode", "params_json"])


def lr_peak(center: float = 1e-3) -> Callable[[Mapping[str, Any]], float]:
    """A deterministic objective (to maximise) peaking at lr == center, in log10 distance."""
    return lambda t: 1.0 - (math.log10(t["lr"]) - math.log10(center)) ** 2
