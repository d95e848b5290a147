"""Real SLURM: the real pipeline, run with the repository's `slurm/` profile on a one-node cluster
started by tests/slurm/setup.sh (2 CPUs here, one fake GPU: gres gpu:1, File=/dev/null).

The module fixture copies the workflow (tests/conftest.py `Workflow`) and slurm/ into a temp dir,
writes a tiny config whose training packs each ask for one GPU, and runs the literal
`snakemake --profile slurm` there (plus --verbose and test-speed flags). While the repeat stage's
pack trains, the test interrupts it twice:

1. pre-emption: `scontrol requeue` — SIGTERM to the job, then back into the queue under the same
   job id. This is what SLURM does to a pre-empted job with PreemptMode=REQUEUE and the profile's
   `slurm-requeue` (sbatch --requeue); plugin 2.8 sees the job PENDING again and just waits, no
   Snakemake retry is used. (PreemptMode=CANCEL ends the job PREEMPTED, which plugin 2.8 mistakes
   for "still running" and waits on forever: the reason the profile asks for requeue.)
2. cancellation: once the restarted job has resumed and checkpointed again, `scancel` — SIGTERM,
   then SIGKILL after KillWait; the job ends CANCELLED, a failure for the plugin, and the
   profile's `retries` resubmit it as a new job (as after a TIMEOUT or an operator's scancel).

Both restarts must resume from the pack checkpoint, and the pack's metrics must equal, bit for
bit, an uninterrupted run of the same pack (trained during the requeue wait).

Needs root, Debian's munge/slurmctld/slurmd/slurm-client (setup.sh installs them if missing)
and snakemake-executor-plugin-slurm. Set ALCHEMIST_SKIP_SLURM=1 to skip; otherwise a failed
bring-up is a test failure. Run alone: `pytest -m slurm` (2.5-3 minutes on 2 cores, bring-up
included).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, Workflow

sys.path.insert(0, str(Path(__file__).resolve().parent / "slurm"))
import slurm_harness as sh  # noqa: E402

pytestmark = pytest.mark.slurm

# the interrupted pack: 2 trials (repeat: top 1 x 2 seeds) on the full train split; batch 8 →
# ~0.15 s per epoch here, so it is still training well after each restart has resumed
REPEAT_EPOCHS = 30


@pytest.fixture(scope="module")
def slurm_env():
    if os.environ.get("ALCHEMIST_SKIP_SLURM") == "1":
        pytest.skip("ALCHEMIST_SKIP_SLURM=1: real-SLURM tests skipped")
    try:
        env = sh.start_cluster()
    except Exception as e:  # a failed bring-up is a failure, not a skip
        pytest.fail(f"SLURM bring-up failed: {e}", pytrace=False)
    yield env
    sh.cancel_all(env)
    if env.get("ALCHEMIST_SLURM_REUSED") != "1":
        sh.stop_cluster()


def tiny_pipeline(root: Path) -> Workflow:
    """A copy of the workflow and of slurm/ with the tiny config (slurm_harness.tiny_config):
    coarse 8 trials (one pack) → repeat top 1 x 2 seeds (one pack) → select; each pack 1 GPU."""
    wf = Workflow(root)
    shutil.copytree(REPO / "slurm", root / "slurm")
    wf.write_config(sh.tiny_config(wf.config, repeat_epochs=REPEAT_EPOCHS, repeat_batch=8))
    return wf


def checkpoint_epoch(folder: Path) -> int:
    """Finished epochs in the pack checkpoint under `folder` (-1: none yet)."""
    import torch

    for path in folder.glob("*.pt") if folder.is_dir() else []:
        try:
            return int(torch.load(path, map_location="cpu", weights_only=False)["state"]["epoch"])
        except Exception:  # noqa: BLE001 - being replaced right now, or gone
            pass
    return -1


def resumed_epoch(log: Path) -> int | None:
    """The epoch of the engine's "resumed pack <id> at epoch <n>" line in a rule log, if any."""
    m = re.search(r"resumed pack \w+ at epoch (\d+)", log.read_text() if log.exists() else "")
    return int(m.group(1)) if m else None


def wait_until(cond, timeout: float, what: str, poll: float = 0.1):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = cond()
        if value is not None and value is not False:
            return value
        time.sleep(poll)
    raise sh.SlurmError(f"timed out after {timeout}s waiting for {what}")


def train_command(wf: Workflow, pack: str, out: Path) -> list[str]:
    """The training rule's command for one pack, writing into `out` instead of results/."""
    return [sys.executable, "-m", "alchemist", "train",
            "--plan", "results/repeat/round1/plan.json", "--pack", pack,
            "--data-dir", "results/data", "--out-dir", str(out / "trials"),
            "--done", str(out / "done.json"), "--threads", "1"]


@pytest.fixture(scope="module")
def pipeline(slurm_env, tmp_path_factory):
    """The tiny pipeline through SLURM; its repeat pack pre-empted once and cancelled once."""
    wf = tiny_pipeline(tmp_path_factory.mktemp("slurm") / "wf")
    ckpts = wf.root / "results/repeat/trials/_checkpoints"
    # the literal `snakemake --profile slurm` in the copy; --verbose prints the sbatch calls;
    # successful jobs' SLURM logs are kept for the assertions
    p = sh.start_snakemake(
        wf.root, ["--verbose", "--slurm-keep-successful-logs"], env=slurm_env, profile="slurm",
        time_limit=330,
    )
    seen: dict = {"timeline": []}

    def mark(what: str) -> None:
        seen["timeline"].append((round(time.monotonic() - p.t0, 1), what))

    def running_and(cond):
        def check():
            if p.poll() is not None:
                raise sh.SlurmError(f"snakemake ended (rc={p.returncode}) before the interruptions")
            return cond()
        return check

    ref = error = None
    try:
        # 1. pre-emption: once the pack has checkpointed an epoch, requeue its job
        job = sh.wait_for_job("train_pack", env=slurm_env, timeout=240, poll=0.1,
                              where=lambda j: "_repeat_" in j.comment,
                              also=running_and(lambda: checkpoint_epoch(ckpts) >= 1))
        sh.requeue(job.jobid, env=slurm_env)
        mark(f"requeue {job.jobid}")
        pack = job.comment.rsplit("_", 1)[-1]
        seen.update(jobid=job.jobid, pack=pack, requeued_at=checkpoint_epoch(ckpts))
        # the uninterrupted reference run of the same pack, while the job waits in the queue
        # (CUDA_VISIBLE_DEVICES as SLURM sets it for the GPU: device `auto` must still pick CPU)
        ref = subprocess.Popen(
            train_command(wf, pack, wf.root / "reference"), cwd=wf.root,
            env={**slurm_env, "CUDA_VISIBLE_DEVICES": "0"},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        # SLURM restarts the same job; the new run rewrites the rule log, resumes from the
        # checkpoint (the log says at which epoch) and checkpoints again
        log = wf.root / f"results/logs/train/repeat/round1_{pack}.log"
        resumed = wait_until(running_and(lambda: resumed_epoch(log)), 120,
                             "the requeued job to resume")
        mark(f"resumed at epoch {resumed}")
        wait_until(running_and(lambda: checkpoint_epoch(ckpts) > resumed or None), 60,
                   "a checkpoint after the resume")
        seen.update(resumed_log=log.read_text(),
                    restarts=sh.show_job(job.jobid, slurm_env).get("Restarts"))
        # 2. cancellation: scancel the running job; Snakemake's retry has to finish the pack
        sh.scancel(job.jobid, env=slurm_env)
        mark(f"scancel {job.jobid}")
        seen["cancelled_at"] = checkpoint_epoch(ckpts)
    except Exception as e:  # noqa: BLE001 - reported below, with Snakemake's output
        error = e
    finally:
        r = sh.finish(p)
        mark("snakemake done")
        if r.returncode != 0:
            sh.cancel_all(slurm_env)
        if ref is not None:
            seen["reference"] = (ref.wait(timeout=300), ref.communicate()[0])
    print("timeline (s since snakemake started):", seen["timeline"])
    if error is not None:
        raise sh.SlurmError(f"{error}\n--- snakemake (rc={r.returncode}), last lines ---\n"
                            f"{r.output[-5000:]}") from error
    wf.run_result, wf.seen = r, seen
    return wf


def metrics(trials_dir: Path, done: Path) -> dict[str, pd.DataFrame]:
    ids = json.loads(done.read_text())["trials"]
    return {t: pd.read_parquet(trials_dir / t / "metrics.parquet").drop(columns="epoch_time_s")
            for t in ids}


def sbatch_calls(output: str) -> list[str]:
    return [line.split("sbatch call:", 1)[1] for line in output.splitlines()
            if "sbatch call:" in line]


# ------------------------------------------------------------------------------ the pipeline


def test_tiny_pipeline_runs_through_slurm_with_gpu_training_jobs(pipeline, slurm_env):
    wf, r = pipeline, pipeline.run_result
    r.check()
    assert r.cmd[4:7] == ["snakemake", "--profile", "slurm"]  # the literal command, cwd = the copy
    for out in ("data/prep.json", "diagnostics/sanity.json", "diagnostics/lr_find.png",
                "coarse/trials.parquet", "repeat/trials.parquet", "repeat/seeds.parquet",
                "select/winner.json", "plots/coarse", "plots/repeat", "lockbox/status.txt"):
        assert (wf.root / "results" / out).exists(), out
    assert json.loads((wf.root / "results/select/winner.json").read_text())
    assert len(pd.read_parquet(wf.root / "results/coarse/trials.parquet")) == 8
    assert len(pd.read_parquet(wf.root / "results/repeat/trials.parquet")) == 2

    # every training pack asked SLURM for a GPU (config gpu: 1 → --gpus=1), no other job did
    calls = sbatch_calls(r.output)
    train = [c for c in calls if "--comment rule_train_pack_" in c]
    other = [c for c in calls if "--comment rule_train_pack_" not in c]
    assert len(train) == 3, calls  # the coarse pack, the repeat pack, its retry after scancel
    for c in train:
        assert "--gpus=1" in c and "--cpus-per-task=1" in c and "--requeue" in c, c
        assert "--open-mode=append" in c, c  # the profile's slurm_extra for train_pack
    assert other and not any("--gpus" in c for c in other), other
    # ... SLURM allocated the fake GPU to each of them, and the job step got it too
    jobs = sh.jobs(slurm_env, name=sh.run_id(r.output))
    train_jobs = [j for j in jobs if j.comment.startswith("rule_train_pack_")]
    assert sorted(j.state for j in train_jobs) == ["CANCELLED", "COMPLETED", "COMPLETED"]
    for j in train_jobs:
        info = sh.show_job(j.jobid, slurm_env)
        assert info.get("TresPerJob") == "gres:gpu:1" and info.get("JOB_GRES") == "gpu:1", info
    coarse_log = next((wf.root / ".snakemake/slurm_logs/rule_train_pack").glob("coarse_*/*.log"))
    assert re.search(r"srun .*--gpus=1", coarse_log.read_text())
    # with the GPU granted (CUDA_VISIBLE_DEVICES set) but no CUDA, device `auto` used the CPU
    packs = list((wf.root / "results").glob("*/round1/packs/*.json"))
    assert len(packs) == 2
    assert {json.loads(f.read_text())["device"] for f in packs} == {"cpu"}


def test_slurm_gpu_step_sets_cuda_visible_devices(pipeline, slurm_env):
    """What the training jobs' steps saw: SLURM exports the fake GPU like a real one."""
    p = subprocess.run(
        ["srun", "-n1", "-c1", "--gpus=1", "--mem=100", "-t", "1", "printenv",
         "CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS"],
        env=slurm_env, capture_output=True, text=True, timeout=60,
    )
    assert p.returncode == 0 and p.stdout.split() == ["0", "0"], p.stdout + p.stderr


# ------------------------------------------------------------------------------ interruptions


def test_preempted_then_cancelled_pack_resumes_to_identical_metrics(pipeline, slurm_env):
    wf, r, seen = pipeline, pipeline.run_result, pipeline.seen
    r.check()
    jobid, pack = seen["jobid"], seen["pack"]
    assert 1 <= seen["requeued_at"] <= seen["cancelled_at"] < REPEAT_EPOCHS, seen
    # pre-emption: SLURM ran the same job again (Restarts=1), which resumed from the checkpoint
    assert seen["restarts"] == "1"
    assert f"resumed pack {pack} at epoch" in seen["resumed_log"], seen["resumed_log"]
    # one SLURM log for both runs of the job (--open-mode=append), then the cancellation
    slurm_log = wf.root / f".snakemake/slurm_logs/rule_train_pack/repeat_1_{pack}/{jobid}.log"
    text = slurm_log.read_text()
    assert re.search(rf"JOB {jobid} ON \S+ CANCELLED AT \S+ DUE TO JOB REQUEUE", text), text[-3000:]
    assert re.search(rf"JOB {jobid} ON \S+ CANCELLED AT \S+ \*\*\*", text), text[-3000:]
    # cancellation: the job ended CANCELLED; Snakemake's retry (a new job, attempt 2) completed
    # the pack, resuming from the checkpoint again
    jobs = {j.jobid: j for j in sh.jobs(slurm_env, name=sh.run_id(r.output))}
    assert jobs[jobid].state == "CANCELLED"
    retries = [j for j in jobs.values() if j.comment == jobs[jobid].comment and j.jobid != jobid]
    assert [j.state for j in retries] == ["COMPLETED"], retries
    assert "Trying to restart job" in r.output
    retry_call = [c for c in sbatch_calls(r.output) if f"--comment {jobs[jobid].comment} " in c][-1]
    # attempt 2 asks for twice the runtime and memory (config resources × attempt)
    assert "--attempt 2" in retry_call and "-t 10" in retry_call and "--mem 1000" in retry_call
    log = wf.root / f"results/logs/train/repeat/round1_{pack}.log"
    assert (resumed_epoch(log) or 0) >= seen["cancelled_at"] - 1, log.read_text()
    # the twice-interrupted pack ends bit for bit where the uninterrupted run does
    rc, out = seen["reference"]
    assert rc == 0, out
    ref = wf.root / "reference"
    assert json.loads((ref / "done.json").read_text())["device"] == "cpu"  # CUDA_VISIBLE_DEVICES=0
    got = metrics(wf.root / "results/repeat/trials",
                  wf.root / f"results/repeat/round1/packs/{pack}.json")
    expected = metrics(ref / "trials", ref / "done.json")
    assert got.keys() == expected.keys() and len(got) == 2
    for tid in expected:
        assert len(got[tid]) == REPEAT_EPOCHS
        pd.testing.assert_frame_equal(got[tid], expected[tid], check_exact=True)
        assert got[tid].equals(expected[tid])


# ------------------------------------------------------------------------------ grouping caps

GROUP = r"""
rule all:
    input: expand("out/p{i}.txt", i=range(2))

rule train_pack:
    output: "out/p{i}.txt"
    threads: 1
    resources: runtime=3, mem_mb=300, gpu=1
    shell: 'echo "job=$SLURM_JOB_ID" > {output}'
"""


def test_grouped_packs_share_one_job_with_capped_resources(slurm_env, tmp_path):
    (tmp_path / "Snakefile").write_text(textwrap.dedent(GROUP))
    r = sh.run_snakemake(
        tmp_path, ["--verbose", "--groups", "train_pack=packs", "--group-components", "packs=2"],
        env=slurm_env, snakefile=tmp_path / "Snakefile", time_limit=180,
    )
    if r.returncode != 0:
        sh.cancel_all(slurm_env)
    r.check()
    calls = sbatch_calls(r.output)
    assert len(calls) == 1, calls  # 2 packs, one SLURM job
    c = calls[0]
    # the plugin runs a group's jobs one after another; the profile's group_slots cap makes
    # the request match: the resources of one pack, the runtime of both (not 2 GPUs, 2 CPUs,
    # 600 MB for 3 minutes)
    assert "--gpus=1" in c and "--cpus-per-task=1" in c and "--mem 300" in c and "-t 6" in c, c
    ids = {(tmp_path / f"out/p{i}.txt").read_text() for i in range(2)}
    assert len(ids) == 1, ids
