"""A training job's torch set-up and data: threads, device, determinism, then the splits a trial
trains on as device tensors. Called once per process, before any model is built."""
from __future__ import annotations

import os

import torch

from alchemist.errors import UserError
from alchemist.train.data import load_split, read_manifest


def configure_torch(threads: int | None, device: str) -> torch.device:
    """Intra-op threads (argument, else $ALCHEMIST_THREADS, else $SLURM_CPUS_PER_TASK, else
    torch's own), the device (auto: CUDA when present) and deterministic kernels on CPU."""
    threads = threads or int(os.environ.get("ALCHEMIST_THREADS") or os.environ.get("SLURM_CPUS_PER_TASK") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device!r} asked for, but CUDA is not available")
    if device == "cpu":
        deterministic_algorithms()
    return torch.device(device)


def deterministic_algorithms() -> None:
    """torch.use_deterministic_algorithms(True) without its first line, which imports
    torch._inductor.config (1.3 s of every job's start-up here) to set a flag for compiled code;
    the engine never compiles. The public call where torch lacks the setter it wraps."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:
        torch.use_deterministic_algorithms(True)
    else:
        setter(True, warn_only=False)


def load_trial_data(trial: dict, data_dir, device: str = "auto", threads: int | None = None):
    """(device, manifest, train split, val split) for one trial's data (`trial["data"]`)."""
    dev = configure_torch(threads, device if device != "auto" else trial["device"])
    prep = read_manifest(data_dir)
    return dev, prep, load_split(data_dir, trial["data"], prep, dev), load_split(data_dir, "val", prep, dev)
