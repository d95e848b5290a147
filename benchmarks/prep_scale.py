"""Benchmark (not a test): prepare a synthetic 1,000,000 × 100 float Parquet file.

Prints the wall time and peak RSS of `alchemist prep` on it. Target on a 2-core machine:
under 60 s and under 4 GiB.  Usage: python benchmarks/prep_scale.py [--rows N] [--cols M]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def make_table(path: Path, rows: int, cols: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    arrays, names = [], []
    for j in range(cols):
        arrays.append(pa.array(rng.normal(j % 7, 1 + j % 3, rows)))
        names.append(f"x{j}")
    logits = sum(arrays[j].to_numpy() * (1 if j % 2 else -1) for j in range(5))
    arrays.append(pa.array((logits > np.median(logits)).astype(np.int64) + (logits > np.quantile(logits, 0.9))))
    names.append("label")
    pq.write_table(pa.Table.from_arrays(arrays, names=names), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "big.parquet"
        t0 = time.perf_counter()
        make_table(src, args.rows, args.cols)
        print(f"generated {args.rows:,} × {args.cols} Parquet ({src.stat().st_size / 2**20:.0f} MiB) "
              f"in {time.perf_counter() - t0:.1f} s")
        data = {"source": str(src), "target": "label", "coarse": {"rows": 10_000}}
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "alchemist", "prep", "--data-json",
                               json.dumps(data), "--out", str(tmp / "out")],
                              capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode:
            sys.exit(f"prep failed:\n{proc.stderr}")
        peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB → GiB
        print(proc.stdout.strip())
        print(f"prep wall time: {wall:.1f} s (target < 60 s)")
        print(f"prep peak RSS:  {peak_gib:.2f} GiB (target < 4 GiB)")


if __name__ == "__main__":
    main()
