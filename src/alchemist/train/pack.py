"""Run one pack end to end: read the trials and the data, train (resuming from a checkpoint when
one matches), write each trial's outputs and the `--done` file (docs/architecture.md).

Exit status: 0 when the pack ran (diverged or failed trials are statuses, not errors, so the sweep
goes on), 143 after SIGTERM (checkpoint written; rerun the same command to resume), 2 when even
one trial does not fit in memory (a UserError). A pack that runs out of memory is retried as
smaller packs (alchemist.train.memory; run_pack).
"""
from __future__ import annotations

import gc
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
from alchemist.train.memory import current_limit_mb, is_out_of_memory, resident_mb
from alchemist.train.metrics import direction
from alchemist.train.runtime import load_trial_data

METRIC_COLUMNS = ["epoch", "train_loss", "val_loss", "train_metric", "val_metric", "lr", "grad_norm",
                  "update_ratio_min", "update_ratio_median", "update_ratio_max", "epoch_time_s"]


def run_pack(trials: list[dict], data_dir, out_dir, *, pack_id: str, stage=None, done=None,
             device: str = "auto", threads: int | None = None, keep_checkpoint: bool = False,
             gpu: str | None = None) -> int:
    """Train the pack; `gpu` is the GPU slot's device id (alchemist.train.gpu_slots), for the
    done-file. A pack that runs out of memory (the job's limit, alchemist.train.memory, or the
    GPU's) is retried as two halves, down to one trial; one trial that does not fit is a
    UserError naming the limit and the setting to change."""
    try:
        dev, prep, train, val = load_trial_data(trials[0], data_dir, device, threads)
    except Exception as err:                # noqa: BLE001 - only running out of memory is ours to say
        if is_out_of_memory(err):
            raise UserError(f"loading the data needs more memory than {_limit_text()}: raise "
                            "resources.train.mem_mb") from None
        raise
    base_mb = resident_mb()
    out_dir = Path(out_dir)
    statuses = _train_fitting(trials, (dev, prep, train, val), out_dir, pack_id, base_mb, keep_checkpoint)
    if statuses is None:
        return 143
    if done:
        Path(done).parent.mkdir(parents=True, exist_ok=True)
        if gpu is None and dev.type == "cuda":
            gpu = os.environ.get("CUDA_VISIBLE_DEVICES")
        write_json(Path(done), {"pack_id": pack_id, "stage": stage, "device": str(dev), "gpu": gpu,
                                "trials": statuses})
    return 0


def _train_fitting(trials, data, out_dir: Path, pack_id: str, base_mb: float, keep_checkpoint: bool):
    """{trial_id: status} of the pack, split in halves while it runs out of memory (None: SIGTERM)."""
    try:
        return _train(trials, data, out_dir, pack_id, keep_checkpoint)
    except OutOfMemory:
        gc.collect()
        dev = data[0]
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        K = len(trials)
        over = f"over {(_limit_mb(dev) - base_mb) / K:.0f} MB a trial" if _limit_mb(dev) else "too much"
        if K == 1:
            raise UserError(f"trial {trials[0]['trial_id']} alone needs more memory than {_limit_text(dev)} "
                            f"(data and set-up take {base_mb:.0f} MB): raise resources.train.mem_mb, or "
                            "lower batch_size or the model's width") from None
        half = (K + 1) // 2
        print(f"alchemist: pack {pack_id}: {K} trials ran out of memory within {_limit_text(dev)} (data and "
              f"set-up {base_mb:.0f} MB, {over}); retrying as packs of {half} and {K - half} — set "
              "resources.train.mem_mb or search.pack_size to avoid the retry", file=sys.stderr, flush=True)
    statuses = {}
    for i, part in enumerate((trials[:half], trials[half:])):
        got = _train_fitting(part, data, out_dir, f"{pack_id}.{i}", base_mb, keep_checkpoint)
        if got is None:
            return None
        statuses.update(got)
    return statuses


class OutOfMemory(Exception):
    """The pack did not fit (raised out of _train, where everything it allocated is dropped)."""


def _train(trials, data, out_dir: Path, pack_id: str, keep_checkpoint: bool):
    dev, prep, train, val = data
    dirs = [out_dir / t["trial_id"] for t in trials]
    for d, t in zip(dirs, trials):
        d.mkdir(parents=True, exist_ok=True)
        write_json(d / "config.json", t)
    path, fingerprint = out_dir / "_checkpoints" / f"{pack_id}.pt", ckpt.pack_fingerprint(trials)
    try:
        trainer = PackTrainer(trials, prep, train, val, dev)
    except Exception as err:                # noqa: BLE001 - out of memory: retried smaller
        if is_out_of_memory(err):
            raise OutOfMemory() from None
        raise
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
        return None
    except (UserError, KeyboardInterrupt):
        raise
    except Exception as err:                # noqa: BLE001 - recorded per trial, the sweep goes on
        if is_out_of_memory(err):
            del trainer, save
            raise OutOfMemory() from None
        error = traceback.format_exc()
        print(error, file=sys.stderr)
        trainer.status = ["failed" if s == "running" else s for s in trainer.status]
    try:
        write_outputs(trainer, dirs, prep, error)
        for k, (t, d) in enumerate(zip(trials, dirs)):
            ckpt.save_continuation(d, t, trainer.start[k], trainer.cont[k])
    except Exception as err:                # noqa: BLE001 - saving copies every trial's weights
        if is_out_of_memory(err):
            del trainer, save
            raise OutOfMemory() from None
        raise
    if not keep_checkpoint:
        ckpt.discard(path)
    return {t["trial_id"]: s for t, s in zip(trials, trainer.status)}


def _limit_mb(device) -> float | None:
    if device is not None and device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory / 2 ** 20
    return current_limit_mb()


def _limit_text(device=None) -> str:
    mb = _limit_mb(device)
    if device is not None and device.type == "cuda":
        return f"the GPU's {mb:.0f} MB"
    return f"resources.train.mem_mb = {mb:.0f} MB" if mb else "this machine's memory"


class Progress:
    """One flushed line per epoch in the job's log (`tail -f results/logs/train/...`): the epoch,
    trials still running, the best validation metric so far (by name; each trial's value at the
    epoch it keeps, which is why it can go down) and its trial, elapsed time and the time left."""

    def __init__(self, trainer: PackTrainer, pack_id: str):
        self.t0, self.pack_id, self.start_epoch = time.perf_counter(), pack_id, trainer.epoch
        self.name = f"val_{trainer.metric}"
        self.minimise = direction(trainer.loss) == "min"
        # what "best" means: each trial's value at the epoch early stopping keeps (its lowest
        # val_loss, unless it monitors the metric itself), not the highest value it ever showed
        monitors = {t["monitor"] for t in trainer.trials}
        self.at = "" if monitors == {"val_metric"} else ", at its lowest val_loss"

    def __call__(self, tr: PackTrainer) -> None:
        done = tr.epoch - self.start_epoch
        elapsed = time.perf_counter() - self.t0
        best = [(b["val_metric"], t["trial_id"]) for b, t in zip(tr.best, tr.trials)
                if b["val_metric"] is not None]
        shown = ""
        if best:
            value, tid = (min if self.minimise else max)(best)
            shown = f" · best {self.name} {value:.4f} (trial {tid}{self.at})"
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


def peak(rows: list[dict], mode: str) -> float | None:
    """The best value of the selection metric seen in any epoch (`peak_val_metric`), beside the
    value at the epoch whose weights are kept (`kept_val_metric`: the monitor's best epoch)."""
    values = [r["val_metric"] for r in rows if r.get("val_metric") is not None and math.isfinite(r["val_metric"])]
    return (min(values) if mode == "min" else max(values)) if values else None


def write_outputs(trainer: PackTrainer, dirs: list[Path], prep, error: str | None) -> None:
    """Write each trial's metrics.parquet, model.pt and summary.json into its dir (`error`: why a
    failed trial failed)."""
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
            "mode": direction(trainer.loss), "kept_epoch": best["epoch"],
            "kept_val_metric": best["val_metric"], "kept_val_loss": best["val_loss"],
            "peak_val_metric": peak(rows, direction(trainer.loss)),
            "final_val_metric": last.get("val_metric"), "final_val_loss": last.get("val_loss"),
            "kept_epoch_metrics": {c: _finite(at_best.get(c)) for c in trainer.scoring.headline()},
            "epochs_run": len(rows), "diverged_epoch": trainer.diverged_epoch[k],
            "wall_time_s": sum(r["epoch_time_s"] for r in rows), "initial_val_loss": trainer.init_loss[k],
            "diagnosis": diagnose(rows, status, prep.task, trainer.init_loss[k], base),
        }
        if status == "failed":
            summary["error"] = error
        write_json(d / "summary.json", summary)
