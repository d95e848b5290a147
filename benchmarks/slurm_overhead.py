"""Wall time per small job through SLURM, with and without grouping.

Brings up the one-node test cluster (tests/slurm/setup.sh, idempotent), then runs a workflow
of N trivial jobs (`echo`, threads 1) with the real `slurm/` profile:

  1. one SLURM job per Snakemake job;
  2. all N in one group (`--groups w=g --group-components g=N`): one SLURM job.

With --pipeline it also times the real pipeline through SLURM: a copy of the workflow with the
tests' tiny config (tests/slurm/slurm_harness.py tiny_config) but a coarse stage of 4 packs
(32 trials), run as the literal `snakemake --profile slurm` in the copy:

  3. one SLURM job per pack;
  4. the 4 coarse packs in one SLURM job (`--groups train_pack=packs --group-components packs=4`);

each with every pack asking for the one fake GPU (gpu: 1, so packs queue for it) and, with
--cpu-packs, also without GPUs (gpu: 0, two packs at a time on the 2 CPUs).

Usage (as root): python benchmarks/slurm_overhead.py [--jobs 8] [--profile-polling]
                 [--pipeline [--cpu-packs]] [--keep]
  --profile-polling  also time (1) with the profile's own polling interval (20 s) instead of
                     the tests' 2 s
  --keep             leave the cluster running afterwards (default: stop it if we started it)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path[:0] = [str(TESTS / "slurm"), str(TESTS)]
import slurm_harness as sh  # noqa: E402
from conftest import REPO, Workflow  # noqa: E402  (the tests' copy of the workflow)

SNAKEFILE = """
N = int(config["njobs"])
rule all:
    input: expand("out/{i}.txt", i=range(N))
rule work:
    output: "out/{i}.txt"
    threads: 1
    resources: runtime=5, mem_mb=200
    shell: "echo $SLURM_JOB_ID > {output}"
"""


def one(label: str, n: int, env: dict, extra: list[str], fast: bool = True) -> dict:
    with tempfile.TemporaryDirectory(prefix="slurm-bench-") as d:
        d = Path(d)
        (d / "Snakefile").write_text(textwrap.dedent(SNAKEFILE))
        r = sh.run_snakemake(
            d, ["--config", f"njobs={n}", *extra], env=env, snakefile=d / "Snakefile",
            fast=fast, time_limit=600,
        ).check()
        slurm_jobs = len({(d / f"out/{i}.txt").read_text() for i in range(n)})
    row = {"case": label, "jobs": n, "slurm_jobs": slurm_jobs, "wall_s": r.seconds,
           "per_job_s": r.seconds / n}
    print(f"{label:<42} {n:>4} {slurm_jobs:>10} {r.seconds:>8.1f} {r.seconds / n:>9.2f}",
          flush=True)
    return row


def pipeline(label: str, env: dict, extra: list[str], gpu: int, packs: int = 4) -> dict:
    """The tiny pipeline with `packs` coarse packs (+ 1 repeat pack) through SLURM."""
    with tempfile.TemporaryDirectory(prefix="slurm-bench-wf-") as d:
        wf = Workflow(Path(d) / "wf")
        shutil.copytree(REPO / "slurm", wf.root / "slurm")
        wf.write_config(sh.tiny_config(wf.config, coarse_trials=8 * packs, gpu=gpu))
        r = sh.run_snakemake(wf.root, extra, env=env, profile="slurm", time_limit=600).check()
    jobs = sh.jobs(env, name=sh.run_id(r.output))
    train = sum(1 for j in jobs if "train_pack" in j.comment)
    print(f"{label:<42} {packs + 1:>5} {len(jobs):>10} {r.seconds:>8.1f}   ({train} with packs)",
          flush=True)
    return {"case": label, "packs": packs + 1, "slurm_jobs": len(jobs), "wall_s": r.seconds}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--profile-polling", action="store_true")
    ap.add_argument("--pipeline", action="store_true")
    ap.add_argument("--cpu-packs", action="store_true")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()

    t0 = time.monotonic()
    env = sh.start_cluster()
    print(f"bring-up: {time.monotonic() - t0:.1f} s "
          f"({'already running' if env['ALCHEMIST_SLURM_REUSED'] == '1' else 'fresh'})")
    print(f"{'case':<42} {'jobs':>4} {'slurm jobs':>10} {'wall s':>8} {'s / job':>9}")
    try:
        n = a.jobs
        one("1 job each (polling 2 s)", 1, env, [])
        one(f"{n} jobs, 1 SLURM job each (polling 2 s)", n, env, [])
        one(f"{n} jobs, 1 group (polling 2 s)", n, env,
            ["--groups", "work=g", "--group-components", f"g={n}"])
        if a.profile_polling:
            one(f"{n} jobs, 1 SLURM job each (profile 20 s)", n, env, [], fast=False)
            one(f"{n} jobs, 1 group (profile 20 s)", n, env,
                ["--groups", "work=g", "--group-components", f"g={n}"], fast=False)
        if a.pipeline:
            group = ["--groups", "train_pack=packs", "--group-components", "packs=4"]
            print(f"{'tiny pipeline (4 coarse packs + 1 repeat)':<42} {'packs':>4} "
                  f"{'slurm jobs':>10} {'wall s':>8}")
            for gpu in (1, 0) if a.cpu_packs else (1,):
                what = "gpu: 1 each" if gpu else "no GPU"
                pipeline(f"pipeline, 1 job per pack ({what})", env, [], gpu)
                pipeline(f"pipeline, coarse packs grouped ({what})", env, group, gpu)
    finally:
        if not a.keep and env.get("ALCHEMIST_SLURM_REUSED") != "1":
            sh.stop_cluster()
    return 0


if __name__ == "__main__":
    sys.exit(main())
