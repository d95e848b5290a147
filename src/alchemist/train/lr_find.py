"""LR range test (PB-13): raise the LR exponentially over a few hundred steps, record the loss,
suggest the LR where the smoothed loss falls most steeply before it diverges.

Two smoothings, each for its job: the sweep stops once a causal moving average (EMA, β = 0.9,
about ten steps) passes 4× its minimum; the table's `smoothed_loss`, the figure and the
suggestion use a centred rolling mean a quarter of a decade wide, which does not lag the raw
loss (an EMA with fastai's β = 0.98 trails it by about two decades over a 200-step sweep)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd


def suggest(lrs, smoothed) -> float | None:
    """LR at the steepest fall of the smoothed loss against log10(LR), before the minimum's blow-up."""
    lrs, smoothed = np.asarray(lrs, float), np.asarray(smoothed, float)
    finite = np.isfinite(smoothed)
    if finite.sum() < 5:
        return None
    end = int(np.nanargmin(np.where(finite, smoothed, np.nan))) + 1
    start = min(len(lrs) // 10, max(end - 3, 0))          # skip the noisy first tenth
    if end - start < 3:
        return float(lrs[max(end - 1, 0)] / 10)
    slope = np.gradient(smoothed[start:end], np.log10(lrs[start:end]))
    return float(lrs[start + int(np.argmin(slope))])


def smooth(lrs, loss) -> np.ndarray:
    """Centred rolling mean of the loss over a quarter of a decade of LR (pandas `rolling`)."""
    lrs = np.asarray(lrs, float)
    if len(lrs) < 3:
        return np.asarray(loss, float)
    per_decade = (len(lrs) - 1) / max(np.log10(lrs[-1] / lrs[0]), 1e-12)
    window = max(3, int(round(per_decade / 4)) | 1)
    return pd.Series(loss, dtype=float).rolling(window, center=True, min_periods=1).mean().to_numpy()


def lr_find(trial: dict, data_dir, *, min_lr=1e-7, max_lr=10.0, steps=200, beta=0.9,
            device="auto", threads=None) -> tuple[pd.DataFrame, dict]:
    """(table of step, lr, loss, smoothed_loss; summary with the suggested LR). Stops early when
    the running (EMA) loss exceeds 4x its minimum (divergence)."""
    from alchemist.train.engine import PackTrainer
    from alchemist.train.runtime import load_trial_data

    dev, prep, train, val = load_trial_data(trial, data_dir, device, threads)
    trainer = PackTrainer([trial | {"early_stopping": False}], prep, train, val, dev)
    rows, avg, best = [], 0.0, math.inf
    for i, (lr, idx) in enumerate(zip(np.geomspace(min_lr, max_lr, steps), trainer.minibatches())):
        trainer.set_lrs([lr])
        value = float(trainer.step(idx)[0])
        avg = beta * avg + (1 - beta) * value
        running = avg / (1 - beta ** (i + 1))
        rows.append({"step": i, "lr": float(lr), "loss": value})
        best = min(best, running)
        if not math.isfinite(running) or running > 4 * best:
            break
    table = pd.DataFrame(rows)
    table["smoothed_loss"] = smooth(table["lr"], table["loss"])
    result = {"suggested_lr": suggest(table["lr"], table["smoothed_loss"]),
              "min_loss_lr": float(table["lr"][table["smoothed_loss"].idxmin()]),
              "steps_run": len(table), "stopped_on_divergence": len(table) < steps,
              "min_lr": min_lr, "max_lr": max_lr, "trial": trial}
    return table, result
