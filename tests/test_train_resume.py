"""Checkpoint and resume: a real `alchemist train` process killed with SIGKILL mid-epoch, or
pre-empted with SIGTERM, resumes on rerun to metrics bitwise equal to an uninterrupted run."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from train_fixtures import digits_dir  # noqa: F401

PACK = [dict(hidden=[256, 256], batch_size=16, epochs=6, lr=lr, dropout=p, seed=s, optimizer="adam",
             schedule="plateau", plateau_patience=1, early_stopping=False, augment=True, aug_noise=0.1)
        for lr, p, s in [(1e-3, 0.1, 0), (3e-3, 0.0, 1), (1e-2, 0.3, 2)]]


def command(spec: Path, data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "alchemist", "train", "--trials", str(spec), "--data-dir", str(data),
            "--out-dir", str(out), "--done", str(out / "done.json"), "--threads", "1", "--device", "cpu"]


def metrics(out: Path) -> dict:
    done = json.loads((out / "done.json").read_text())
    return {tid: pd.read_parquet(out / tid / "metrics.parquet").drop(columns="epoch_time_s")
            for tid in done["trials"]}


def assert_bitwise_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for tid in a:
        pd.testing.assert_frame_equal(a[tid], b[tid], check_exact=True)


@pytest.fixture(scope="module")
def reference(digits_dir, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("ref")
    (root / "pack.json").write_text(json.dumps(PACK))
    subprocess.run(command(root / "pack.json", digits_dir, root / "out"), check=True, timeout=600)
    return root / "pack.json", metrics(root / "out")


def wait_for_checkpoint(out: Path, proc, timeout=300) -> dict:
    """Block until a checkpoint with >= 1 finished epoch exists; return its epoch."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        files = list((out / "_checkpoints").glob("*.pt")) if (out / "_checkpoints").exists() else []
        if files:
            try:
                return torch.load(files[0], weights_only=False)["state"]
            except Exception:     # being replaced right now
                pass
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def test_sigkill_mid_epoch_then_rerun_is_bitwise_identical(reference, digits_dir, tmp_path):  # noqa: F811
    spec, expected = reference
    out = tmp_path / "out"
    proc = subprocess.Popen(command(spec, digits_dir, out), stderr=subprocess.PIPE, text=True)
    first = wait_for_checkpoint(out, proc)
    epoch_time = first["rows"][0][-1]["epoch_time_s"]
    time.sleep(epoch_time * 0.4)                  # into the middle of the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "done.json").exists()
    rerun = subprocess.run(command(spec, digits_dir, out), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed pack" in rerun.stderr
    assert_bitwise_equal(metrics(out), expected)


def test_sigterm_checkpoints_and_exits_for_a_retry(reference, digits_dir, tmp_path):  # noqa: F811
    spec, expected = reference
    out = tmp_path / "out"
    proc = subprocess.Popen(command(spec, digits_dir, out), stderr=subprocess.PIPE, text=True)
    first = wait_for_checkpoint(out, proc)
    time.sleep(first["rows"][0][-1]["epoch_time_s"] * 0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    state = torch.load(next((out / "_checkpoints").glob("*.pt")), weights_only=False)["state"]
    assert state["pending"] is not None or state["epoch"] > first["epoch"]   # saved at the signal
    rerun = subprocess.run(command(spec, digits_dir, out), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert_bitwise_equal(metrics(out), expected)


def test_checkpoints_are_throttled_by_their_cost_but_never_when_forced():
    """A save is declined while the time since the last one is under RATIO x its cost (so a
    fast epoch does not pay an fsync'd checkpoint each time); SIGTERM's forced save never is."""
    import time

    from alchemist.train.checkpoint import Throttle

    saved = []

    def slow_save(tr):
        time.sleep(0.02)
        saved.append(tr)

    throttle = Throttle(slow_save)
    assert throttle("e1") is True                       # the first offer is always taken
    assert throttle("e2") is False                      # 0 s since, the last one cost 20 ms
    assert throttle("e3", force=True) is True           # SIGTERM
    time.sleep(Throttle.RATIO * 0.025)
    assert throttle("e4") is True and saved == ["e1", "e3", "e4"]
