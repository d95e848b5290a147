"""The pack-size probe (`search.pack_size: auto`): a few optimiser steps of a stage's real model,
batch and data on the device that trains it, at K = 1, 2, 4, … trials, timing each step and
recording the process's peak memory; alchemist.packing decides from these figures.

Sizes double until the next one would not fit the job's memory (the peaks so far, extrapolated
as a line), stops paying (a size gains under GROWTH_STOP trial-steps per second over the best
so far: on a CPU, convolutions and recurrent nets run at about the same speed per trial at any
K, so larger packs only cost memory), or passes the group's trials. Each size is timed for at least
`min_s` seconds after one warm-up step. A size that runs out of memory ends the probe.

Figures are cached per (architecture, input shape, batch size, device kind, engine code) as
`<probe_dir>/<key>.json`, so later stages and rounds reuse them (a coarse stage on a subsample
and a fine one on the full split share one probe: a step's cost does not depend on the rows).
"""
from __future__ import annotations

import gc
import json
import os
import platform
import re
import statistics
import time
from pathlib import Path

import torch

from alchemist.atomic import write_json
from alchemist.train.data import Split
from alchemist.train.engine import PackTrainer
from alchemist.train.memory import OUT_OF_MEMORY, is_out_of_memory
from alchemist.train.runtime import load_trial_data
from alchemist.trial import complete_trials, short_hash

#: Settings that shape a training step's cost (the rest, and every per-trial setting, do not).
COST_KEYS = ("model", "hidden", "auto_width", "activation", "batch_norm", "cnn_channels", "optimizer",
             "batch_size", "grad_accum", "augment", "aug_flip", "bf16", "loss", "device")
GROWTH_STOP = 0.05     # stop doubling once a size gains less than this over the best so far
EVAL_ROWS = 256        # validation rows an evaluation is timed on
WARM_UP = 2            # untimed steps first


def process_age_s() -> float:
    """Seconds since this process started (its interpreter, imports and data): what a training
    job spends before its first step. 0 where /proc is missing."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(uptime - ticks / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return 0.0


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:
            Path("/proc/self/clear_refs").write_text("5")    # resets VmHWM (Linux >= 4.0)
        except OSError:
            pass


def _peak_mb(device: torch.device) -> float | None:
    """Peak memory since the reset: CUDA's reserved bytes, or the larger of the peak resident
    set and the data segment now (what RLIMIT_DATA, the job's limit, counts)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_reserved(device) / 2 ** 20
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    kb = [int(m.group(1)) for k in ("VmHWM", "VmData") if (m := re.search(k + r":\s+(\d+)", status))]
    return max(kb) / 1024 if kb else None


def device_kind(device: torch.device) -> str:
    """What the figures were measured on: the GPU's name, or the CPU model and threads."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()}:{os.cpu_count()}:{torch.get_num_threads()}"


def cache_key(trial: dict, prep_manifest: dict, device: torch.device, code: str) -> str:
    """The 16-hex-digit name of a probe's cached figures: cost settings, input shape, device kind, code."""
    shape = prep_manifest.get("image_shape") or prep_manifest.get("sequence") or len(prep_manifest["features"])
    return short_hash({"cost": {k: trial.get(k) for k in COST_KEYS}, "input": shape,
                       "device": device_kind(device), "code": code}, 16)


def _time_size(trials: list[dict], prep, train, val, device, min_s: float) -> dict:
    """One size: seconds per optimiser step of the pack, and per evaluation of the whole
    validation split (timed on at most EVAL_ROWS of it, scaled: evaluation is linear in rows)."""
    sample = Split(val.X[:EVAL_ROWS], val.y[:EVAL_ROWS])
    trainer = PackTrainer(trials, prep, train, sample, device)
    batches = trainer.minibatches()
    for _ in range(WARM_UP):                                  # allocations, kernel selection
        trainer.step(next(batches))
    times, t0 = [], time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - t0 < min_s and len(times) < 50):
        t1 = time.perf_counter()
        trainer.step(next(batches))
        _sync(device)
        times.append(time.perf_counter() - t1)
    step_s = statistics.median(times)                        # steady against a busy machine
    t1 = time.perf_counter()
    trainer.evaluate(sample)
    _sync(device)
    return {"K": len(trials), "step_s": step_s,
            "eval_s": (time.perf_counter() - t1) * len(val.y) / max(len(sample.y), 1)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(trial: dict, data_dir, n_max: int, *, device: str = "auto", threads: int | None = None,
            limit_mb: float | None = None, min_s: float = 0.1, label_extra: str = "") -> dict:
    """Probe figures for packs of `trial`'s settings (seeds varied), K up to n_max."""
    from alchemist.packing import peak_mb

    dev, prep, train, val = load_trial_data(trial, data_dir, device, threads)
    startup_s = process_age_s()
    shape = prep.image_shape or ([prep.manifest["sequence"]["length"]] if prep.manifest.get("sequence")
                                 else [len(prep.features)])
    where = f"{dev.type}" + (f" ({torch.get_num_threads()} thread{'s' * (torch.get_num_threads() > 1)})"
                             if dev.type == "cpu" else f" ({torch.cuda.get_device_name(dev)})")
    figures = {"label": f"{trial['model']} {'×'.join(map(str, shape))} batch {trial['batch_size']} on {where}"
                        + label_extra,
               "device": device_kind(dev), "startup_s": round(startup_s, 3), "limit_mb": limit_mb,
               "train_rows": len(train.y), "val_rows": len(val.y), "batch_size": int(trial["batch_size"]),
               "sizes": [], "stopped": None}
    K, best = 1, 0.0
    while K <= max(n_max, 1):
        predicted = peak_mb(figures, K)
        if K > 1 and limit_mb and predicted is not None and predicted > limit_mb:
            figures["stopped"] = f"K={K} would need about {predicted:.0f} MB"
            break
        trials = complete_trials([{**{k: v for k, v in trial.items() if k != "trial_id"},
                                   "seed": int(trial["seed"]) + i} for i in range(K)])
        gc.collect()
        _reset_peak(dev)
        try:
            size = _time_size(trials, prep, train, val, dev, min_s)
        except Exception as err:            # noqa: BLE001 - only out-of-memory ends the probe quietly
            if not is_out_of_memory(err):
                raise
            figures["stopped"] = f"K={K}: {OUT_OF_MEMORY}"
            break
        finally:
            gc.collect()
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        size["peak_mb"] = _peak_mb(dev)
        figures["sizes"].append({k: (round(v, 6) if isinstance(v, float) else v) for k, v in size.items()})
        rate = K / size["step_s"]
        if K > 1 and rate < best * (1 + GROWTH_STOP):
            figures["stopped"] = f"K={K} is no faster per trial"
            break
        best = max(best, rate)
        K *= 2
    return figures


def cached_or_measure(trial: dict, data_dir, n_max: int, *, probe_dir=None, device: str = "cpu",
                      threads: int | None = None, limit_mb: float | None = None) -> dict:
    """The figures for `trial`'s settings on this device: from `probe_dir` when measured before
    (under at least this much memory), else measured now and stored there."""
    from alchemist.provenance import command_digest
    from alchemist.train.data import read_manifest
    from alchemist.train.runtime import configure_torch

    dev = configure_torch(threads, device)
    if dev.type == "cuda" and not limit_mb:            # the card's free memory, shared per --gpu-share
        limit_mb = torch.cuda.mem_get_info(dev)[0] / 2 ** 20 / max(int(os.environ.get("ALCHEMIST_GPU_SHARE") or 1), 1)
    key = cache_key(trial, read_manifest(data_dir).manifest, dev, command_digest("train"))
    path = Path(probe_dir) / f"{key}.json" if probe_dir else None
    if path is not None and path.exists():
        try:
            figures = json.loads(path.read_text())
        except (OSError, ValueError):
            figures = None
        smaller = figures and limit_mb and (figures.get("limit_mb") or 0) < limit_mb
        if figures and not (smaller and "MB" in str(figures.get("stopped"))):
            return {**figures, "cached": True}     # (not stopped by a smaller memory limit)
    figures = measure(trial, data_dir, n_max, device=str(dev), threads=threads, limit_mb=limit_mb)
    figures["key"] = key
    if path is not None:
        write_json(path, figures)
    return figures
