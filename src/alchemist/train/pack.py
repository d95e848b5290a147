"""Run one pack end to end: read the trials and the data, train (resuming from a checkpoint when
one matches), write each trial's outputs and the `--done` file (docs/architecture.md).

Exit status: 0 when the pack ran (diverged or failed trials are statuses, not errors, so the sweep
goes on), 143 after SIGTERM (checkpoint written; rerun the same command to resume).
"""
from __future__ import annotations

import math
import os
import sys
import time
import traceback
from pathlib import Path

import pandas as pd
import torch

from alchemist.atomic import replacing, write_json
from alchemist.errors import UserError
from alchemist.train import checkpoint as ckpt
from alchemist.train.diagnose import diagnose
from alchemist.train.engine import PackTrainer, Preempted
from alchemist.train.runtime import load_trial_data

METRIC_COLUMNS = ["epoch", "train_loss", "val_loss", "train_metric", "val_metric", "lr", "grad_norm",
                  "update_ratio_min", "update_ratio_median", "update_ratio_max", "epoch_time_s"]


def run_pack(trials: list[dict], data_dir, out_dir, *, pack_id: str, stage=None, done=None,
             device: str = "auto", threads: int | None = None, keep_checkpoint: bool = False,
             gpu: str | None = None) -> int:
    """Train the pack; `gpu` is the GPU slot's device id (alchemist.train.gpu_slots), for the done-file."""
    dev, prep, train, val = load_trial_data(trials[0], data_dir, device, threads)
    out_dir = Path(out_dir)
    dirs = [out_dir / t["trial_id"] for t in trials]
    for d, t in zip(dirs, trials):
        d.mkdir(parents=True, exist_ok=True)
        write_json(d / "config.json", t)
    trainer = PackTrainer(trials, prep, train, val, dev)
    path, fingerprint = out_dir / "_checkpoints" / f"{pack_id}.pt", ckpt.pack_fingerprint(trials)
    state = ckpt.load(path, fingerprint)
    if state is not None:
        ckpt.restore(trainer, state)
        print(f"resumed pack {pack_id} at epoch {trainer.epoch}", file=sys.stderr)
    else:
        for k, (t, d) in enumerate(zip(trials, dirs)):
            snap = ckpt.continuation(d, t)
            if snap is None:
                continue
            if trainer.continue_from(k, snap):
                print(f"trial {t['trial_id']}: continued from epoch {snap['epochs_done']} "
                      f"({snap['status']} at {snap['budget']} epochs)", file=sys.stderr)
            else:
                print(f"trial {t['trial_id']}: its {ckpt.CONTINUATION} comes from another device type; "
                      f"trained from scratch", file=sys.stderr)

    save = ckpt.Throttle(lambda tr: ckpt.save_atomic(
        {"fingerprint": fingerprint, "state": ckpt.trainer_state(tr)}, path))

    error = None
    try:
        with ckpt.StopOnSigterm(trainer):
            trainer.fit(save, every=max(1, min(int(t["checkpoint_every"]) for t in trials)),
                        progress=Progress(trainer, pack_id))
    except Preempted:
        print(f"pack {pack_id}: SIGTERM, checkpoint written to {path}; rerun to resume", file=sys.stderr)
        return 143
    except (UserError, KeyboardInterrupt):
        raise
    except Exception:                       # noqa: BLE001 - recorded per trial, the sweep goes on
        error = traceback.format_exc()
        print(error, file=sys.stderr)
        trainer.status = ["failed" if s == "running" else s for s in trainer.status]
    write_outputs(trainer, dirs, prep, error)
    for k, (t, d) in enumerate(zip(trials, dirs)):
        ckpt.save_continuation(d, t, trainer.start[k], trainer.cont[k])
    if done:
        Path(done).parent.mkdir(parents=True, exist_ok=True)
        if gpu is None and dev.type == "cuda":
            gpu = os.environ.get("CUDA_VISIBLE_DEVICES")
        write_json(Path(done), {"pack_id": pack_id, "stage": stage, "device": str(dev), "gpu": gpu,
                                "trials": {t["trial_id"]: s for t, s in zip(trials, trainer.status)}})
    if not keep_checkpoint:
        ckpt.discard(path)
    return 0


class Progress:
    """One flushed line per epoch in the job's log (`tail -f results/logs/train/...`): the epoch,
    trials still running, the best validation metric so far (by name) and its trial, elapsed
    time and an estimate of the time left."""

    def __init__(self, trainer: PackTrainer, pack_id: str):
        self.t0, self.pack_id, self.start_epoch = time.perf_counter(), pack_id, trainer.epoch
        self.name = f"val_{trainer.metric}"
        self.minimise = trainer.loss == "mse"

    def __call__(self, tr: PackTrainer) -> None:
        done = tr.epoch - self.start_epoch
        elapsed = time.perf_counter() - self.t0
        best = [(b["val_metric"], t["trial_id"]) for b, t in zip(tr.best, tr.trials)
                if b["val_metric"] is not None]
        shown = ""
        if best:
            value, tid = (min if self.minimise else max)(best)
            shown = f" · best {self.name} {value:.4f} (trial {tid})"
        left = elapsed / max(done, 1) * (tr.epochs - tr.epoch) if any(tr.active) else 0.0
        print(f"pack {self.pack_id} · epoch {tr.epoch}/{tr.epochs} · {sum(tr.active)}/{tr.K} running"
              f"{shown} · {elapsed:.1f} s elapsed · ~{left:.1f} s left", file=sys.stderr, flush=True)


def baseline(prep, train, metric: str) -> float:
    """What guessing scores on train: the target's standard deviation (regression, RMSE of the
    mean), the majority class's share (accuracy), or 1/C (balanced accuracy, macro-F1)."""
    if prep.task == "regression":
        return float(train.y.double().std())
    counts = torch.bincount(train.y)
    if metric != "accuracy":
        return 1.0 / max(int((counts > 0).sum()), 1)
    return float(counts.max()) / len(train.y)


def _finite(value):
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def write_outputs(trainer: PackTrainer, dirs: list[Path], prep, error: str | None) -> None:
    is_reg = trainer.loss == "mse"
    base = baseline(prep, trainer.train, trainer.metric)
    for k, (t, d) in enumerate(zip(trainer.trials, dirs)):
        rows, best, status = trainer.rows[k], trainer.best[k], trainer.status[k]
        columns = METRIC_COLUMNS + trainer.scoring.columns()
        with replacing(d / "metrics.parquet") as tmp:
            pd.DataFrame(rows, columns=columns).to_parquet(tmp, index=False)
        with replacing(d / "model.pt") as tmp:
            torch.save({"config": t, "n_inputs": trainer.train.X.shape[1], "task": prep.task,
                        "loss": trainer.loss, "metric": trainer.metric, "image_shape": prep.image_shape,
                        "sequence": prep.manifest.get("sequence"),
                        "n_classes": prep.n_classes, "state": trainer.model.trial_state(k)}, tmp)
        last = rows[-1] if rows else {}
        at_best = next((r for r in rows if r["epoch"] == best["epoch"]), {})
        summary = {
            "trial_id": t["trial_id"], "status": status, "metric": trainer.metric,
            "mode": "min" if is_reg else "max", "best_epoch": best["epoch"],
            "best_val_metric": best["val_metric"], "best_val_loss": best["val_loss"],
            "final_val_metric": last.get("val_metric"), "final_val_loss": last.get("val_loss"),
            "best_epoch_metrics": {c: _finite(at_best.get(c)) for c in trainer.scoring.headline()},
            "epochs_run": len(rows), "diverged_epoch": trainer.diverged_epoch[k],
            "wall_time_s": sum(r["epoch_time_s"] for r in rows), "initial_val_loss": trainer.init_loss[k],
            "diagnosis": diagnose(rows, status, prep.task, trainer.init_loss[k], base),
        }
        if status == "failed":
            summary["error"] = error
        write_json(d / "summary.json", summary)
