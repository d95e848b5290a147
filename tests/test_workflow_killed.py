"""A run killed with SIGKILL (Snakemake and its jobs) leaves a lock and unfinished outputs; the
next run prints, in one line, the exact command that continues it, and that command finishes
the sweep."""
from __future__ import annotations

import os
import signal
import subprocess
import time

from conftest import Workflow


def small(wf: Workflow) -> None:
    config = wf.config
    config["data"]["coarse"] = {"fraction": 0.5, "rows": 300, "classes": None}
    config["train"].update({"hidden": [32], "epochs": 15, "early_stopping": False})
    config["search"]["pack_size"] = 4
    config["search"]["space"] = {"lr": {"log_uniform": [1e-3, 3e-2]}}
    config["search"]["stages"] = [
        {"name": "coarse", "kind": "search", "sampler": "random", "trials": 8, "data": "train_coarse"}]
    config["mlflow"]["enabled"] = False
    wf.write_config(config)


def test_the_run_after_a_kill_says_how_to_continue(workflow):
    wf = workflow
    small(wf)
    proc = subprocess.Popen(["snakemake", "--cores", "2"], cwd=wf.root, env=wf.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while not list((wf.root / "results/logs/train").glob("**/*.log")) and time.time() < deadline:
        time.sleep(0.5)                                  # until training has started
    time.sleep(2)
    os.killpg(proc.pid, signal.SIGKILL)                  # Snakemake and every job it started
    proc.wait()
    assert list((wf.root / ".snakemake/locks").glob("*.lock")), "the kill should leave a lock"
    after = wf.run(check=False)
    assert after.returncode != 0
    hints = [line for line in after.stderr.splitlines() if "to continue:" in line]
    assert len(hints) == 1, after.stderr[-3000:]
    command = hints[0].split("to continue: ", 1)[1]
    assert command.startswith("snakemake --unlock && snakemake --cores 2")
    assert command.endswith("--rerun-incomplete")
    done = subprocess.run(command, shell=True, cwd=wf.root, env=wf.env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (wf.root / "results/coarse/trials.parquet").exists()
    again = wf.run()                                     # and then nothing is left to say
    assert "to continue" not in again.stderr
