"""A trial's diagnosis from its learning curves (PB-22, PB-23), with the playbook's next step.

Rules, first match wins:
* diverged: the loss became NaN/inf or exploded (PB-16);
* not converged: the best train loss is still above 90% of the initial loss (PB-22);
* underfit: the train metric is poor (accuracy below majority + 0.8·(1 − majority); for
  regression R² below 0.75, i.e. RMSE above half the target's spread) (PB-23);
* overfit: train much better than validation (accuracy gap > 0.05, or val RMSE > 1.25× train),
  or the val loss rose more than 10% above its best while the train loss kept falling (PB-23);
* good fit otherwise.
"""
from __future__ import annotations

import math

NEXT_STEPS = {
    "diverged": "lower the LR (e.g. ÷10), add global-norm gradient clipping (5–15) or L2 (PB-16)",
    "not converged": "stop this setting: raise the LR or run the LR range test (PB-13); if no setting "
                     "converges, suspect the data or the model code, not the hyperparameters (PB-24)",
    "underfit": "more capacity (layers, units), less dropout/L2, more epochs (PB-23)",
    "overfit": "more data, augmentation, more dropout or L2; early stopping keeps the best epoch "
               "(PB-23, PB-19, PB-20, PB-21)",
    "good fit": "keep it: refine nearby settings (coarse-to-fine, PB-29) and repeat over seeds (PB-31)",
}


def diagnose(rows: list[dict], status: str, task: str, init_loss: float, baseline: float) -> dict:
    """`baseline`: what guessing scores on the selection metric (classification: the majority
    share for accuracy, 1/C for balanced accuracy or macro-F1) or the train target's std
    (regression)."""
    label = _label(rows, status, task, init_loss, baseline)
    return {"label": label, "next_step": NEXT_STEPS[label]}


def _label(rows, status, task, init_loss, baseline) -> str:
    if status == "diverged":
        return "diverged"
    if not rows:
        return "not converged"
    train_losses = [r["train_loss"] for r in rows]
    if math.isfinite(init_loss) and min(train_losses) > 0.9 * init_loss:
        return "not converged"
    last = rows[-1]
    if task == "regression":
        poor = baseline > 0 and last["train_metric"] > 0.5 * baseline
        gap = last["val_metric"] > 1.25 * last["train_metric"] + 1e-12
    else:
        poor = last["train_metric"] < baseline + 0.8 * (1 - baseline)
        gap = last["train_metric"] - last["val_metric"] > 0.05
    if poor:
        return "underfit"
    best = min(range(len(rows)), key=lambda i: rows[i]["val_loss"])
    val_rising = (rows[-1]["val_loss"] > 1.1 * rows[best]["val_loss"]
                  and rows[-1]["train_loss"] < rows[best]["train_loss"])
    return "overfit" if gap or val_rising else "good fit"
