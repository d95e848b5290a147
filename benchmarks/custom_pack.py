"""A user's nn.Module packed with torch.func (issue 15): a pack of 16 trials of a custom model
(vectorised: stack_module_state + functional_call + vmap) against the same 16 trained one at a
time, and against the loop fallback (16 instances one after another in one job).

Digits (1,149 train rows), a 64-128-128-10 GELU MLP written as a plain nn.Sequential, Adam,
batch 64, per-epoch validation, 1 torch thread. Ratios are medians over interleaved rounds
(A B C A B C ...: this VM drifts by tens of percent over minutes), with their range.

    python benchmarks/custom_pack.py [--epochs 5] [--repeats 3] [--k 16]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.modules.setdefault("custom_pack", sys.modules[__name__])
import train_fixtures  # noqa: E402

from alchemist.train import custom  # noqa: E402
from alchemist.train.data import load_split, read_manifest  # noqa: E402
from alchemist.train.engine import PackTrainer  # noqa: E402
from alchemist.trial import complete_trials  # noqa: E402


def mlp(n_in, n_out, cfg):
    return nn.Sequential(nn.Linear(n_in, 128), nn.GELU(), nn.Linear(128, 128), nn.GELU(),
                         nn.Linear(128, n_out))


def fit_seconds(trials, prep, train, val, loop: bool = False) -> float:
    build = custom.build_custom
    if loop:        # the fallback, forced: K instances one after another
        custom.build_custom = lambda t, i, o, s=None: custom.CustomPack(*custom.instantiate(t, i, o, s))
    try:
        t0 = time.perf_counter()
        PackTrainer(trials, prep, train, val, "cpu").fit()
        return time.perf_counter() - t0
    finally:
        custom.build_custom = build


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--k", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = train_fixtures.digits(Path(tempfile.mkdtemp()) / "digits")
    prep = read_manifest(data)
    train, val = load_split(data, "train", prep), load_split(data, "val", prep)
    trials = complete_trials([dict(model="custom_pack:mlp", lr=10 ** (-3 + k / args.k), seed=k,
                                   epochs=args.epochs, early_stopping=False) for k in range(args.k)])
    pack, loop, solo = [], [], []
    for _ in range(args.repeats):
        pack.append(fit_seconds(trials, prep, train, val))
        loop.append(fit_seconds(trials, prep, train, val, loop=True))
        solo.append(sum(fit_seconds([t], prep, train, val) for t in trials))
    vs_solo = [s / p for s, p in zip(solo, pack)]
    vs_loop = [lo / p for lo, p in zip(loop, pack)]
    print(f"custom MLP, K={args.k}, {args.epochs} epochs, 1 thread, {args.repeats} rounds")
    print(f"  vmapped pack      {statistics.median(pack):7.2f} s")
    print(f"  loop fallback     {statistics.median(loop):7.2f} s")
    print(f"  {args.k} one at a time {statistics.median(solo):7.2f} s")
    print(f"  pack vs one at a time: {statistics.median(vs_solo):.1f}x ({min(vs_solo):.1f}-{max(vs_solo):.1f})")
    print(f"  pack vs loop fallback: {statistics.median(vs_loop):.1f}x ({min(vs_loop):.1f}-{max(vs_loop):.1f})")


if __name__ == "__main__":
    main()
