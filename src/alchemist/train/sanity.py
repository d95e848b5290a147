"""Sanity checks before a search (PB-24): the initial loss is what chance predicts (≈ ln C for
C-class cross-entropy, ln 2 for binary), and the model can overfit one tiny batch."""
from __future__ import annotations

import math

from alchemist.atomic import write_json


def expected_initial_loss(loss: str, n_outputs: int, y) -> float:
    """The loss a chance-level model starts at: ln C for cross-entropy, ln 2 for BCE, else mean(y²)
    (MSE of predicting 0)."""
    if loss == "cross_entropy":
        return math.log(n_outputs)
    if loss == "bce":
        return math.log(2)
    return float((y.double() ** 2).mean())      # MSE of predicting 0 for (standardised) targets


def sanity(trial: dict, data_dir, out_file=None, *, rows=32, steps=300, threshold=0.05,
           tolerance=0.5, device="auto", threads=None) -> dict:
    """`tolerance`: the initial loss may differ from the expected one by this fraction.
    `threshold`: the tiny batch's final loss must fall below this fraction of its initial loss."""
    import torch

    from alchemist.train.data import Split
    from alchemist.train.engine import PackTrainer
    from alchemist.train.losses import n_outputs
    from alchemist.train.runtime import load_trial_data

    dev, prep, train, val = load_trial_data(trial, data_dir, device, threads)
    trainer = PackTrainer([trial], prep, train, val, dev)
    init = trainer.init_loss[0]
    expected = expected_initial_loss(trainer.loss, n_outputs(prep.task, trainer.loss, prep.n_classes), val.y)
    # the tiny batch: no regularisation, no augmentation, the trial's model and optimiser
    plain = trial | {"dropout": 0.0, "weight_decay": 0.0, "l1": 0.0, "augment": False, "early_stopping": False}
    tiny = Split(train.X[:rows], train.y[:rows])
    fit = PackTrainer([plain], prep, tiny, tiny, dev)
    idx = torch.arange(len(tiny.y), device=dev).unsqueeze(0)
    losses = [float(fit.step(idx)[0]) for _ in range(steps)]
    report = {
        "initial_loss": {"value": init, "expected": expected, "tolerance": tolerance,
                         "ok": math.isfinite(init) and abs(init - expected) <= tolerance * expected},
        "overfit_tiny_batch": {"rows": len(tiny.y), "steps": steps, "initial_loss": losses[0],
                               "final_loss": losses[-1], "threshold": threshold * losses[0],
                               "ok": math.isfinite(losses[-1]) and losses[-1] < threshold * losses[0]},
    }
    report["passed"] = report["initial_loss"]["ok"] and report["overfit_tiny_batch"]["ok"]
    report["advice"] = ("ok" if report["passed"] else
                        "suspect the data or the model code, not the hyperparameters (PB-24)")
    if out_file:
        write_json(out_file, report)
    return report
