"""What the built-in image set reaches: `synthetic:shapes` (6,000 RGB 32×32 images, 4 classes)
through the real commands — `alchemist prep` (per-channel normalisation with train statistics),
then one `alchemist train` pack of the ResNet-style `rescnn` (and the plain `cnn` beside it)
with augmentation (shifts, flips, small rotations) — printing each trial's validation accuracy
per epoch and the wall time. The pipeline's tests use 400 images and a few epochs; this is the
full-size figure the README states.

    python benchmarks/image_accuracy.py [--epochs 12] [--channels 8 16] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--channels", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--source", default="synthetic:shapes")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        data = json.dumps({"source": args.source, "coarse": {"fraction": 1.0}})
        subprocess.run([sys.executable, "-m", "alchemist", "prep", "--data-json", data, "--out",
                        str(tmp / "data")], check=True)
        prep_s = time.perf_counter() - t0
        trials = [{"model": model, "cnn_channels": args.channels, "hidden": [64], "epochs": args.epochs,
                   "batch_size": 32, "lr": args.lr, "seed": 0, "early_stopping": False,
                   "augment": True, "aug_shift": 2, "aug_flip": True, "aug_rotate": 10.0, "device": "cpu"}
                  for model in ("rescnn", "cnn")]
        for trial in trials:
            (tmp / "trials.json").write_text(json.dumps([trial]))
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "alchemist", "train", "--trials", str(tmp / "trials.json"),
                            "--data-dir", str(tmp / "data"), "--out-dir", str(tmp / trial["model"]),
                            "--threads", str(args.threads)], check=True, stderr=subprocess.DEVNULL)
            wall = time.perf_counter() - t0
            run = next((tmp / trial["model"]).glob("*/metrics.parquet"))
            curve = pd.read_parquet(run)["val_metric"].round(4).tolist()
            print(f"{args.source} {trial['model']} channels {args.channels}, {args.epochs} epochs, "
                  f"lr {args.lr}: best val_accuracy {max(curve):.4f} (last {curve[-1]:.4f}); "
                  f"train {wall:.0f} s, prep {prep_s:.0f} s; per epoch {curve}")


if __name__ == "__main__":
    main()
