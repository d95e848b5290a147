"""Helpers to drive the one-node test SLURM (tests/slurm/setup.sh) from Python.

Used by tests/test_slurm.py and benchmarks/slurm_overhead.py (import with tests/slurm on sys.path):

* start_cluster() / stop_cluster(): bring the cluster up (idempotent) and down, by pid;
* run_snakemake(): `snakemake --profile <profile> ...` under a hard time limit, with the
  test-speed overrides; start_snakemake() does the same in the background (Popen). With
  profile="slurm" and no snakefile it runs the literal `snakemake --profile slurm` in `workdir`
  (a copy of the repository with its slurm/ folder), exactly as a user runs it;
* jobs() / wait_for_job() / show_job(): the cluster's job table (squeue keeps finished jobs for
  MinJobAge = 600 s) and one job's details (`scontrol show job -d`);
* scancel() / requeue(): what an operator or a pre-empting scheduler does to a running job;
* tiny_config(): the small pipeline config (digits) the SLURM tests and the benchmark run.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
PROFILE = REPO / "slurm"
STATE_DIR = Path(os.environ.get("ALCHEMIST_SLURM_DIR", "/tmp/alchemist-slurm"))

# Command-line overrides of the profile for tests: poll every 2 s after a job finished
# (profile: 20 s), and no need to wait for a network file system.
FAST_ARGS = (
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--latency-wait",
    "5",
)


class SlurmError(RuntimeError):
    pass


def _env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["SLURM_CONF"] = str(STATE_DIR / "etc" / "slurm.conf")
    env["ALCHEMIST_SLURM_DIR"] = str(STATE_DIR)
    if extra:
        env.update(extra)
    return env


def start_cluster(timeout: float = 300) -> dict:
    """Run setup.sh (installs packages if missing, starts the daemons, waits for the node).

    Returns the environment (os.environ + SLURM_CONF) to run SLURM commands and Snakemake with.
    Raises SlurmError with setup.sh's output when the bring-up fails.
    """
    t0 = time.monotonic()
    p = subprocess.run(
        ["bash", str(HERE / "setup.sh"), "--env"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
    )
    if p.returncode != 0:
        raise SlurmError(
            f"tests/slurm/setup.sh failed (rc={p.returncode}):\n{p.stdout}\n{p.stderr}"
        )
    env = _env()
    for line in p.stdout.splitlines():
        if line.startswith("export ") and "=" in line:
            key, val = line[len("export ") :].split("=", 1)
            env[key] = val
    env["ALCHEMIST_SLURM_BRINGUP_S"] = f"{time.monotonic() - t0:.2f}"
    # "1" when setup.sh found the cluster already up (then whoever started it stops it)
    env["ALCHEMIST_SLURM_REUSED"] = "1" if "already running" in p.stderr else "0"
    return env


def stop_cluster() -> None:
    subprocess.run(
        ["bash", str(HERE / "teardown.sh")], env=_env(), capture_output=True, timeout=120
    )


def _snakemake_cmd(
    workdir: Path,
    args: list[str] | tuple[str, ...] = (),
    snakefile: Path | None = None,
    profile: Path | str = PROFILE,
    fast: bool = True,
    time_limit: int = 300,
) -> list[str]:
    # `timeout -k`: Snakemake's SLURM executor can ignore SIGTERM while it waits for jobs;
    # SIGKILL follows 20 s later so CI never hangs. Snakemake runs with cwd=workdir: a relative
    # profile ("slurm") resolves to <workdir>/slurm, as `snakemake --profile slurm` does.
    cmd = ["timeout", "-k", "20", str(time_limit), "snakemake", "--profile", str(profile)]
    if snakefile is not None:
        cmd += ["--directory", str(workdir), "--snakefile", str(snakefile)]
    if fast:
        cmd += list(FAST_ARGS)
    cmd += list(args)
    return cmd


@dataclass
class Run:
    returncode: int
    output: str
    seconds: float
    cmd: list[str]

    def check(self) -> "Run":
        if self.returncode != 0:
            raise SlurmError(
                f"snakemake failed (rc={self.returncode}, {self.seconds:.0f}s): "
                f"{' '.join(self.cmd)}\n{self.output[-6000:]}"
            )
        return self


def start_snakemake(
    workdir: Path,
    args: list[str] | tuple[str, ...] = (),
    *,
    env: dict | None = None,
    snakefile: Path | None = None,
    profile: Path | str = PROFILE,
    fast: bool = True,
    time_limit: int = 300,
    log: Path | None = None,
) -> subprocess.Popen:
    """Start Snakemake through SLURM in the background (own session); output goes to `log`."""
    cmd = _snakemake_cmd(workdir, args, snakefile, profile, fast, time_limit)
    log = log or (Path(workdir) / "snakemake-slurm.log")
    fh = open(log, "w")
    p = subprocess.Popen(
        cmd,
        cwd=str(workdir),
        env=env or _env(),
        stdout=fh,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    p.log_path = log  # type: ignore[attr-defined]
    p.cmd = cmd  # type: ignore[attr-defined]
    p.t0 = time.monotonic()  # type: ignore[attr-defined]
    fh.close()
    return p


def finish(p: subprocess.Popen, grace: float = 30) -> Run:
    """Wait for a start_snakemake() process; kill its process group if it outlives its limit."""
    try:
        p.wait(timeout=float(p.cmd[3]) + grace)  # type: ignore[attr-defined]
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    out = Path(p.log_path).read_text(errors="replace")  # type: ignore[attr-defined]
    return Run(p.returncode, out, time.monotonic() - p.t0, p.cmd)  # type: ignore[attr-defined]


def run_snakemake(workdir: Path, args=(), **kw) -> Run:
    """Run Snakemake through SLURM to completion; returns its exit status and output."""
    return finish(start_snakemake(workdir, args, **kw))


# ---------------------------------------------------------------- the job table


@dataclass
class Job:
    jobid: str
    name: str  # the plugin's run id: alchemist_<uuid>
    state: str  # PENDING, RUNNING, COMPLETED, CANCELLED, FAILED, TIMEOUT, ...
    comment: str  # the plugin's comment: rule_<rule>[_wildcards_<w>] or rule_<group>_<rule>
    reason: str


def run_id(output: str) -> str:
    """The plugin's run id (`SLURM run ID: alchemist_<uuid>`), i.e. the name of its jobs."""
    for line in output.splitlines():
        if line.startswith("SLURM run ID:"):
            return line.split(":", 1)[1].strip()
    raise SlurmError("no 'SLURM run ID' in the Snakemake output")


def jobs(env: dict | None = None, name: str | None = None) -> list[Job]:
    """All jobs squeue still knows (finished ones for MinJobAge), optionally of one run."""
    cmd = ["squeue", "-h", "-t", "all", "-o", "%i|%j|%T|%k|%r"]
    if name:
        cmd += ["--name", name]
    p = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        env=env or _env(),
        timeout=30,
    )
    if p.returncode != 0:
        raise SlurmError(f"squeue failed: {p.stderr}")
    out = []
    for line in p.stdout.splitlines():
        parts = line.split("|")
        if len(parts) >= 5:
            out.append(Job(*[x.strip() for x in parts[:5]]))
    return out


def wait_for_job(
    rule: str,
    state: str = "RUNNING",
    *,
    env: dict | None = None,
    timeout: float = 120,
    exclude: set[str] = frozenset(),
    also: "callable | None" = None,
    where: "callable | None" = None,
    poll: float = 0.5,
) -> Job:
    """Wait until a job of `rule` is in `state` (and `where(job)` and `also()` are true)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if also is None or also():
            for j in jobs(env):
                if (
                    j.state == state
                    and j.jobid not in exclude
                    and (j.comment == f"rule_{rule}" or j.comment.startswith(f"rule_{rule}_"))
                    and (where is None or where(j))
                ):
                    return j
        time.sleep(poll)
    raise SlurmError(f"no {state} job of rule {rule!r} within {timeout}s: {jobs(env)}")


def show_job(jobid: str, env: dict | None = None) -> dict[str, str]:
    """`scontrol show job -d -o <id>` as KEY=VALUE pairs (also for finished jobs, MinJobAge)."""
    p = subprocess.run(
        ["scontrol", "show", "job", "-d", "-o", str(jobid)],
        capture_output=True, text=True, env=env or _env(), timeout=30,
    )
    if p.returncode != 0:
        raise SlurmError(f"scontrol show job {jobid} failed: {p.stderr}")
    out = {}
    for item in p.stdout.split():
        key, sep, val = item.partition("=")
        if sep:
            out.setdefault(key, val)   # -d repeats some keys per node; keep the job-level one
    return out


def scancel(jobid: str, env: dict | None = None) -> None:
    subprocess.run(["scancel", jobid], check=True, env=env or _env(), timeout=30)


def requeue(jobid: str, env: dict | None = None) -> None:
    """What pre-emption with PreemptMode=REQUEUE does: SIGTERM the job, put it back in the
    queue; it starts again after cred_expire (15 s on the test cluster)."""
    subprocess.run(["scontrol", "requeue", jobid], check=True, env=env or _env(), timeout=30)


def cancel_all(env: dict | None = None) -> None:
    """Cancel every queued/running job of this user (cleanup after a failed test)."""
    if shutil.which("scancel"):
        subprocess.run(
            ["scancel", "--user", getpass.getuser()],
            env=env or _env(),
            capture_output=True,
            timeout=30,
        )


# ---------------------------------------------------------------- the tiny real pipeline


def tiny_config(
    config: dict,
    *,
    coarse_trials: int = 8,
    repeat_epochs: int = 3,
    repeat_batch: int = 64,
    gpu: int = 1,
) -> dict:
    """`config` (config/config.yaml, parsed) cut down to a pipeline of about a minute: digits,
    coarse random search on 200 rows (packs of 8, 2 epochs, hidden [16]) → repeat the top
    configuration with 2 seeds → select; MLflow off; every training pack asks for `gpu` GPUs,
    1 CPU, 500 MB, 5 minutes."""
    config["data"]["coarse"] = {"fraction": 0.5, "rows": 200, "classes": None}
    config["train"].update({"hidden": [16], "epochs": 2, "batch_size": 64, "early_stopping": False})
    config["search"]["pack_size"] = 8
    config["search"]["space"] = {"lr": {"log_uniform": [1e-3, 1e-1]},
                                 "dropout": {"uniform": [0.0, 0.3]}}
    config["search"]["stages"] = [
        {"name": "coarse", "kind": "search", "sampler": "random", "trials": coarse_trials,
         "data": "train_coarse", "set": {"epochs": 2}},
        {"name": "repeat", "kind": "repeat", "from": "coarse", "top_n": 1, "seeds": 2,
         "data": "train", "set": {"epochs": repeat_epochs, "batch_size": repeat_batch}},
        {"name": "select", "kind": "select", "from": "repeat"},
    ]
    config["mlflow"]["enabled"] = False
    config["resources"]["train"] = {"gpu": gpu, "threads": 1, "mem_mb": 500, "runtime": 5}
    return config
