"""The GPU path in one call (issues 15 and 21): for the MLP, the CNN and a custom nn.Module
(vectorised with torch.func) on digits, and `rescnn` on 3×32×32 images (synthetic:shapes) and
`lstm` on token sequences (synthetic:sequences), train packs of 16, 64 and 256 trials — and the
pack size `pack_size: auto` picks there (the probe + alchemist.packing, one job per card) — on the
device against the same trials one at a time (a sample of them, scaled up), check each trial's
losses against a CPU run of the same trial within a stated tolerance, and print seconds per
trial-epoch, speed-ups and peak device memory: whether packing wins on the card.

Meant for a lent GPU machine (the `device` tool): `python benchmarks/gpu_check.py` (about 8
minutes on one H100). `--device cpu --sizes 4 --epochs 1 --models mlp` is the smoke run the tests do.

Tolerance: CUDA kernels (TF32 off, deterministic algorithms on) differ from CPU in the last bits
of each step; after a few epochs the losses agree to ~1e-4 relative. The check is on the first
epoch's train loss and the last epoch's validation loss, per trial, at rel 1e-3.
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
sys.modules.setdefault("gpu_check", sys.modules[__name__])
import train_fixtures  # noqa: E402

from alchemist.train.data import load_split, read_manifest  # noqa: E402
from alchemist.train.engine import PackTrainer  # noqa: E402
from alchemist.trial import complete_trials  # noqa: E402

TOLERANCE = 1e-3


def custom_mlp(n_in, n_out, cfg):
    return nn.Sequential(nn.Linear(n_in, 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(),
                         nn.Linear(256, n_out))


MODELS = {"mlp": dict(model="mlp", hidden=[256, 256]),
          "cnn": dict(model="cnn", cnn_channels=[32, 64], hidden=[128]),
          "custom": dict(model="gpu_check:custom_mlp"),
          "rescnn": dict(model="rescnn"),
          "lstm": dict(model="lstm", hidden=[64, 128], grad_clip=5)}
DATA = {"rescnn": "synthetic:shapes:3000", "lstm": "synthetic:sequences:3000"}     # else digits


def prepared(model: str, root: Path) -> Path:
    """The model's data, prepared once per run (digits as the engine tests build it)."""
    out = root / DATA.get(model, "digits").replace(":", "_")
    if not (out / "prep.json").exists():
        if model in DATA:
            import json
            import subprocess
            subprocess.run([sys.executable, "-m", "alchemist", "prep", "--data-json",
                            json.dumps({"source": DATA[model]}), "--out", str(out)], check=True,
                           capture_output=True)
        else:
            train_fixtures.digits(out)
    return out


def auto_k(model: str, data: Path, device, k_max: int, epochs: int) -> int:
    """What `pack_size: auto` picks for k_max trials of this model, one job on the device."""
    import json
    import math

    from alchemist import packing
    from alchemist.train.probe import cached_or_measure

    trial = trials_for(model, 1, epochs)[0]
    figures = cached_or_measure(trial, data, k_max, probe_dir=data / "probe", device=str(device), threads=1)
    rows = json.loads((data / "prep.json").read_text())["splits"]["train"]["rows"]
    choice = packing.choose(figures, k_max, epochs, math.ceil(rows / 128), 1)
    print(f"  {packing.describe(figures, choice)}")
    return choice.K


def trials_for(model: str, k: int, epochs: int) -> list[dict]:
    return complete_trials([dict(MODELS[model], lr=10 ** (-3.5 + 2 * i / max(k, 2)), seed=i,
                                 epochs=epochs, early_stopping=False, batch_size=128)
                            for i in range(k)])


def run(trials, data, device) -> tuple[float, list, float]:
    prep = read_manifest(data)
    train, val = load_split(data, "train", prep, device), load_split(data, "val", prep, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    trainer = PackTrainer(trials, prep, train, val, device)
    trainer.fit()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else float("nan")
    return seconds, trainer.rows, peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 16, 64, 256])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--solo-sample", type=int, default=4, help="trials timed one at a time, scaled up")
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--auto", action=argparse.BooleanOptionalAction, default=True,
                    help="also the K that pack_size: auto picks (a probe on the device)")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    root = Path(tempfile.mkdtemp())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}; epochs {args.epochs}; tolerance rel {TOLERANCE}")
    print(f"{'model':7} {'K':>4} {'pack s':>8} {'s/trial-epoch':>14} {'solo s (est.)':>14} {'speed-up':>9} "
          f"{'peak MiB':>9} {'max rel diff vs CPU':>20}")
    failures = 0
    for model in args.models:
        data = prepared(model, root)
        sizes = list(args.sizes)
        if args.auto:
            sizes = sorted({*sizes, auto_k(model, data, device, max(sizes), args.epochs)})
        for k in sizes:
            trials = trials_for(model, k, args.epochs)
            run(trials[:2], data, device)                                   # warm-up
            pack_s, rows, peak = run(trials, data, device)
            sample = trials[:min(args.solo_sample, k)]
            solo_s = statistics.mean(run([t], data, device)[0] for t in sample) * k
            _, cpu_rows, _ = run(sample, data, torch.device("cpu"))
            diffs = []
            for i in range(len(sample)):
                for key, at in (("train_loss", 0), ("val_loss", -1)):
                    a, b = rows[i][at][key], cpu_rows[i][at][key]
                    diffs.append(abs(a - b) / max(abs(b), 1e-12))
            worst = max(diffs)
            failures += worst > TOLERANCE
            print(f"{model:7} {k:4d} {pack_s:8.2f} {pack_s / (k * args.epochs):14.4f} {solo_s:14.2f} "
                  f"{solo_s / pack_s:8.1f}x {peak:9.0f} {worst:20.2e}{'  FAIL' if worst > TOLERANCE else ''}")
    print("all trials within tolerance" if not failures else f"{failures} configuration(s) outside tolerance")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
