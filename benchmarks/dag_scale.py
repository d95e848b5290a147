"""Benchmark (not a test): how long Snakemake takes to build the job graph of a big search, and
the default pipeline's wall time.

1. A config with 10,000 random trials (packs of 16 → 625 pack jobs, and packs of 1 → 10,000
   jobs): the plan checkpoint is run once, then `snakemake -n` is timed — it builds the whole
   graph below the checkpoint, reading trial tables from plan.json. Target ≤ 15 s here.
2. The default `snakemake --cores 2` on digits, from scratch. Target ≤ 5 min here.

Usage: python benchmarks/dag_scale.py [--skip-default]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def copy_workflow(root: Path) -> Path:
    root.mkdir(parents=True)
    for name in ("Snakefile", "workflow", "config", "envs"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    return root


def snakemake(root: Path, *args: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(["snakemake", "--cores", "2", *args], cwd=root, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"snakemake {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def big_search(tmp: Path, trials: int, pack_size: int) -> None:
    root = copy_workflow(tmp / f"big-{pack_size}")
    config = yaml.safe_load((root / "config/config.yaml").read_text())
    config["search"]["pack_size"] = pack_size
    config["search"]["stages"] = [{"name": "coarse", "kind": "search", "sampler": "random",
                                   "trials": trials, "data": "train_coarse"}]
    (root / "config/config.yaml").write_text(yaml.safe_dump(config))
    plan_s = snakemake(root, "results/coarse/round1/plan.json")
    dry_s = snakemake(root, "-n")
    jobs = -(-trials // pack_size)
    print(f"{trials:,} trials in packs of {pack_size:>2} ({jobs:,} pack jobs): "
          f"plan {plan_s:5.1f} s, `snakemake -n` {dry_s:5.1f} s (target ≤ 15 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-default", action="store_true", help="only the dry-run timings")
    parser.add_argument("--trials", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for pack_size in (16, 1):
            big_search(tmp, args.trials, pack_size)
        if not args.skip_default:
            root = copy_workflow(tmp / "default")
            config = yaml.safe_load((root / "config/config.yaml").read_text())
            wall = snakemake(root)
            winner = (root / "results/select/winner.json")
            print(f"default pipeline (`snakemake --cores 2`, {len(config['search']['stages'])} stages): "
                  f"{wall:.0f} s wall (target ≤ 300 s); winner file: {winner.exists()}")


if __name__ == "__main__":
    main()
