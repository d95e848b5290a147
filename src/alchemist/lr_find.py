"""LR range test (PB-13): raise the LR exponentially over a few hundred steps, record the loss,
suggest the LR where the smoothed loss falls most steeply before it diverges."""
from __future__ import annotations

import json
import math
from pathlib import Path

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


def lr_find(trial: dict, data_dir, out_dir, *, min_lr=1e-7, max_lr=10.0, steps=200, beta=0.98,
            device="auto", threads=None) -> dict:
    import torch

    from alchemist.train.engine import PackTrainer
    from alchemist.train.pack import prepare

    dev, prep, train, val = prepare(trial, data_dir, device, threads)
    trainer = PackTrainer([trial | {"early_stopping": False}], prep, train, val, dev)
    lrs = np.geomspace(min_lr, max_lr, steps)
    rows, avg, best, order, pos = [], 0.0, math.inf, trainer.epoch_order(), 0
    for i, lr in enumerate(lrs):
        if pos >= order.shape[1]:
            order, pos = trainer.epoch_order(), 0
        idx = order[:, pos:pos + trainer.batch]
        pos += trainer.batch
        trainer.opt.set_lr(torch.tensor([lr], dtype=torch.float64))
        loss, _ = trainer.forward_loss(idx)
        trainer.backward(loss)
        trainer.optimizer_step(probe=False)
        value = float(loss[0].detach())
        avg = beta * avg + (1 - beta) * value
        smoothed = avg / (1 - beta ** (i + 1))
        rows.append({"step": i, "lr": float(lr), "loss": value, "smoothed_loss": smoothed})
        best = min(best, smoothed)
        if not math.isfinite(smoothed) or smoothed > 4 * best:
            break
    table = pd.DataFrame(rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out / "lr_find.parquet", index=False)
    suggestion = suggest(table["lr"], table["smoothed_loss"])
    from alchemist.plots import lr_find as plot_lr_find

    plot_lr_find(table, suggestion, out / "lr_find.png")
    result = {"suggested_lr": suggestion, "min_loss_lr": float(table["lr"][table["smoothed_loss"].idxmin()]),
              "steps_run": len(table), "stopped_on_divergence": len(table) < steps,
              "min_lr": min_lr, "max_lr": max_lr, "trial": trial}
    (out / "lr_find.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result
