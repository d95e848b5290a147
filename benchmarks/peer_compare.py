"""Benchmark (not a test): the whole default pipeline against what a user would run instead.

Interleaved rounds (pipeline, plain script, script logging to MLflow, pipeline, ...), each from a
clean slate (a fresh copy of the workflow, an empty MLflow store): the machine is shared and
noisy, so each ratio is taken within a round and reported as the median with its range.

* pipeline: `snakemake --cores 2` on a fresh copy of this checkout (MLflow on, the defaults);
* plain:    benchmarks/peer_script.py, PyTorch + Optuna in one process, no tracking;
* mlflow:   the same script logging every trial as a nested run with every epoch's metrics.

    python benchmarks/peer_compare.py [--rounds 3] [--cores 2] [--config KEY=VALUE ...]
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "peer_script.py"


def fresh_workflow(root: Path) -> Path:
    root.mkdir(parents=True)
    for name in ("Snakefile", "workflow", "config", "envs"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    shutil.copytree(REPO / "src" / "alchemist", root / "src" / "alchemist",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return root


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return wall, proc.stdout + proc.stderr


def pipeline(tmp: Path, cores: int, config: list[str]) -> tuple[float, str]:
    root = fresh_workflow(tmp / f"wf{time.monotonic_ns()}")
    wall, _ = timed(["snakemake", "--cores", str(cores), *(["--config", *config] if config else [])], root)
    winner = next((root / "results").glob("*/winner.json"))
    w = json.loads(winner.read_text())["winner"]
    return wall, f"{w['mean']:.4f} ± {w['ci_half_width']:.4f} (n={w['n']})"


def script(tmp: Path, mlflow: bool) -> tuple[float, str]:
    store = tmp / f"mlflow{time.monotonic_ns()}"
    store.mkdir()
    wall, out = timed([sys.executable, str(SCRIPT), *(["--mlflow", str(store)] if mlflow else [])], tmp)
    m = re.search(r"winner val_accuracy (\S+) ± (\S+)", out)
    return wall, f"{m.group(1)} ± {m.group(2)} (n=5)" if m else "?"


def summary(ratios: list[float]) -> str:
    return f"median {statistics.median(ratios):.2f}× (rounds {min(ratios):.2f}–{max(ratios):.2f}×)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--config", nargs="*", default=[], help="snakemake --config overrides")
    args = parser.parse_args()
    walls: dict[str, list[float]] = {"pipeline": [], "plain": [], "mlflow": []}
    winners: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for r in range(args.rounds):
            for name, run in (("pipeline", lambda: pipeline(tmp, args.cores, args.config)),
                              ("plain", lambda: script(tmp, False)),
                              ("mlflow", lambda: script(tmp, True))):
                wall, winners[name] = run()
                walls[name].append(wall)
                print(f"round {r + 1} {name:8s} {wall:6.1f} s   winner {winners[name]}", flush=True)
    print()
    for name, values in walls.items():
        print(f"{name:8s} median {statistics.median(values):6.1f} s  (all: "
              f"{', '.join(f'{v:.1f}' for v in values)})  winner val accuracy {winners[name]}")
    for peer in ("plain", "mlflow"):
        ratios = [p / s for p, s in zip(walls["pipeline"], walls[peer])]
        print(f"pipeline ÷ {peer} script: {summary(ratios)}")


if __name__ == "__main__":
    main()
