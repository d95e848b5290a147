"""Benchmark (not a test): bookkeeping per trial at 1,000 and 10,000 synthetic trials x 30 epochs.

For a stage folder of N finished trials (metrics.parquet with 10 columns x 30 epochs, config.json,
summary.json; packs of 16), each step runs as the pipeline runs it, one real process:

* tables:  `alchemist aggregate --summary` (trials, seeds and leaderboard tables);
* figures: `alchemist publish --no-tracking` (the stage's figures, drawn once);
* sqlite:  `alchemist publish` into the default SQLite store (figures + MLflow sync, a fresh store);
* server:  `alchemist sync` into a local `mlflow server` (SQLite behind it, 127.0.0.1).

Prints wall seconds and milliseconds per trial; the target is tables + figures + MLflow sync
≤ 20 ms per trial at 1,000 trials, growing linearly to 10,000.

    python benchmarks/bookkeeping.py [--trials 1000 10000] [--epochs 30] [--no-server]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from mlflow_fixtures import ENV, make_trial_dir, mlflow_server  # noqa: E402

from alchemist.trial import make_trial  # noqa: E402


def make_stage(results: Path, n: int, epochs: int) -> None:
    stage = results / "coarse"
    done = stage / "round1" / "packs"
    done.mkdir(parents=True)
    ids = []
    for i in range(n):
        t = make_trial({"epochs": epochs}, {"lr": 10 ** (-4 + 3 * (i % 997) / 997),
                                            "dropout": (i % 13) / 26, "seed": 0},
                       stage="coarse", data="train_coarse")
        make_trial_dir(stage / "trials", t, epochs, "diverged" if i % 50 == 0 else "completed")
        ids.append(t["trial_id"])
    for p in range(0, n, 16):
        (done / f"p{p:06d}.json").write_text(json.dumps(
            {"pack_id": f"p{p:06d}", "stage": "coarse", "trials": {t: "completed" for t in ids[p:p + 16]}}))


def timed(*args: str, cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "alchemist", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"alchemist {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--no-server", action="store_true", help="skip the mlflow server runs")
    args = parser.parse_args()
    for n in args.trials:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            results = root / "results"
            t0 = time.perf_counter()
            make_stage(results, n, args.epochs)
            print(f"\n{n:,} trials x {args.epochs} epochs (made in {time.perf_counter() - t0:.0f} s)")
            packs = sorted(str(p.relative_to(root)) for p in results.glob("coarse/round1/packs/*.json"))
            rows = {"tables": timed("aggregate", "--summary", "--packs", *packs, "--trials-dir",
                                    "results/coarse/trials", "--out", "results/coarse/trials.parquet",
                                    cwd=root)}
            rows["figures"] = timed("publish", "--stage", "coarse", "--figures-dir", "results/plots/coarse",
                                    "--no-tracking", cwd=root)
            rows["figures + MLflow (SQLite)"] = timed(
                "publish", "--stage", "coarse", "--figures-dir", "results/plots/coarse",
                "--marker", "results/coarse/mlflow_sync.json", cwd=root)
            rows["MLflow (SQLite), nothing new"] = timed("sync", "--stage", "coarse", cwd=root)
            if not args.no_server:
                with mlflow_server(root / "server.db", root / "server-artifacts") as uri:
                    rows["MLflow (local mlflow server)"] = timed(
                        "sync", "--stage", "coarse", "--tracking-uri", uri, cwd=root)
            for name, wall in rows.items():
                print(f"  {name:32s} {wall:7.1f} s  {1000 * wall / n:6.1f} ms/trial")
            total = rows["tables"] + rows["figures + MLflow (SQLite)"]
            print(f"  {'tables + figures + MLflow sync':32s} {total:7.1f} s  {1000 * total / n:6.1f} "
                  f"ms/trial (target ≤ 20 at 1,000)")


if __name__ == "__main__":
    main()
