"""`alchemist probe`: time packs of 1, 2, 4, … trials of one trial's settings on this machine's
training device and print the figures as JSON (alchemist.train.probe; cached in --probe-dir).

Run by `alchemist plan` as a process of its own when search.pack_size is auto: it starts as a
training job starts (its start-up is measured as one), runs under the job's memory cap, and keeps
torch out of the plan command."""
from __future__ import annotations

import json
import sys

from alchemist.commands.trial_args import add_trial_arguments, trial_from_args

HELP = "time packs of 1, 2, 4, ... trials on the training device (the pack-size probe); print JSON figures"


def add_arguments(p) -> None:
    """The options of `alchemist probe`: one trial's settings and data, largest pack, memory cap, cache."""
    add_trial_arguments(p)
    p.add_argument("--n-max", type=int, default=16, help="largest pack to try (the group's trials)")
    p.add_argument("--mem-mb", type=float, help="a training job's memory (resources.train.mem_mb)")
    p.add_argument("--probe-dir", help="cache folder: figures measured before are reused")


def run(args) -> int:
    """Time packs of the trial on its device (a GPU slot for auto/cuda) under the memory cap; prints the
    figures as JSON; returns 0."""
    trial = trial_from_args(args.trial, args.set)
    device = args.device if args.device != "auto" else trial["device"]
    if device in ("auto", "cuda"):     # a GPU slot, as a training job takes one
        from alchemist.train import gpu_slots
        gpu_slots.acquire(None, label="pack-size probe")
    from alchemist.train import probe
    from alchemist.train.memory import apply_limit

    apply_limit(args.mem_mb)
    figures = probe.cached_or_measure(trial, args.data_dir, args.n_max, probe_dir=args.probe_dir,
                                      device=device, threads=args.threads, limit_mb=args.mem_mb)
    json.dump(figures, sys.stdout, sort_keys=True)
    print()
    return 0
