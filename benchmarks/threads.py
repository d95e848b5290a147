"""Benchmark (not a test): torch threads per training job against concurrent jobs on this machine.

One pack of the default fine stage (16 trials x 30 epochs, digits, full train split) as a real
`alchemist train` process, at 1 and 2 threads, alone and with a second such job running at the
same time (what `snakemake --cores 2` does with two ready packs, or a pack beside a bookkeeping
job). Interleaved rounds; the medians of each job's wall time are printed. The pipeline's default
(`resources.train.threads`) is chosen by these numbers (config/README.md).

    python benchmarks/threads.py [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from alchemist.trial import make_trial, pack_key


def plan(root: Path, seed: int) -> Path:
    trials = [make_trial({"epochs": 30}, {"lr": 10 ** (-3.5 + i / 10), "dropout": i / 40, "seed": seed},
                         stage="fine", data="train") for i in range(16)]
    path = root / f"plan{seed}.json"
    path.write_text(json.dumps({"stage": "fine", "trials": {t["trial_id"]: t for t in trials},
                                "packs": {pack_key(trials[0]): [t["trial_id"] for t in trials]}}))
    return path


def start(root: Path, plan_file: Path, threads: int, tag: str) -> subprocess.Popen:
    pack = next(iter(json.loads(plan_file.read_text())["packs"]))
    return subprocess.Popen([sys.executable, "-m", "alchemist", "train", "--plan", str(plan_file),
                             "--pack", pack, "--data-dir", str(root / "data"), "--out-dir",
                             str(root / f"out-{tag}-{time.monotonic_ns()}"), "--threads", str(threads),
                             "--device", "cpu"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run(root: Path, plans: list[Path], threads: int, jobs: int) -> list[float]:
    t0 = time.perf_counter()
    procs = [start(root, plans[j], threads, f"{threads}-{jobs}-{j}") for j in range(jobs)]
    walls = []
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            sys.exit(err.decode()[-2000:])
        walls.append(time.perf_counter() - t0)
    return walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        subprocess.run([sys.executable, "-m", "alchemist", "prep", "--data-json",
                        '{"source": "sklearn:digits", "seed": 0, "test_fraction": 0.2, "val_fraction": 0.2,'
                        ' "coarse": {"fraction": 0.5}}', "--out", str(root / "data")],
                       check=True, capture_output=True)
        plans = [plan(root, s) for s in (0, 1)]
        cases = [(1, 1), (2, 1), (1, 2), (2, 2)]
        walls: dict[tuple, list[float]] = {c: [] for c in cases}
        for r in range(args.rounds):
            for threads, jobs in cases:
                w = run(root, plans, threads, jobs)
                walls[(threads, jobs)].extend(w)
                print(f"round {r + 1}: {jobs} job(s) at {threads} thread(s): "
                      f"{', '.join(f'{x:.1f}' for x in w)} s", flush=True)
        print()
        for (threads, jobs), w in walls.items():
            print(f"{jobs} concurrent job(s), {threads} thread(s) each: median {statistics.median(w):5.1f} s "
                  f"per job (range {min(w):.1f}–{max(w):.1f}); two packs done in "
                  f"{statistics.median(w) * (2 if jobs == 1 else 1):5.1f} s")


if __name__ == "__main__":
    main()
