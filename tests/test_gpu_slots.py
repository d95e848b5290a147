"""GPU slots on one multi-GPU machine without SLURM (alchemist.gpu_slots), tested without a GPU:
ALCHEMIST_GPUS pretends the device ids, real concurrent processes take the slots, and their
recorded intervals show that no two packs share a device id unless sharing is enabled."""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alchemist.train import gpu_slots
from alchemist.errors import UserError

HOLDER = """
import json, os, sys, time
from pathlib import Path
from alchemist.train import gpu_slots
out = Path(sys.argv[1])
out.with_suffix(".ready").touch()
while not (out.parent / "go").exists():      # start together: a real race for the slots
    time.sleep(0.01)
slot = gpu_slots.acquire(share=int(sys.argv[2]), poll_s=0.02)
start = time.time()
time.sleep(float(sys.argv[3]))
json.dump({"id": slot.device, "slot": slot.slot, "cuda": os.environ["CUDA_VISIBLE_DEVICES"],
           "start": start, "end": time.time()}, open(sys.argv[1], "w"))
"""


def run_holders(tmp: Path, n: int, gpus: str, share: int, hold_s: float = 1.0) -> list[dict]:
    env = {**os.environ, "ALCHEMIST_GPUS": gpus, "ALCHEMIST_GPU_LOCK_DIR": str(tmp / "locks")}
    env.pop("SLURM_JOB_ID", None)
    procs = [subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp / f"p{i}.json"), str(share), str(hold_s)],
                              env=env, stderr=subprocess.PIPE, text=True) for i in range(n)]
    deadline = time.time() + 120
    while len(list(tmp.glob("p*.ready"))) < n and time.time() < deadline:
        time.sleep(0.02)
    (tmp / "go").touch()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    return [json.loads((tmp / f"p{i}.json").read_text()) for i in range(n)]


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one moment."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    now = most = 0
    for _, step in events:          # at equal times the end (-1) sorts first
        now += step
        most = max(most, now)
    return most


def by_id(records: list[dict]) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list] = {}
    for r in records:
        assert r["cuda"] == r["id"]                 # CUDA_VISIBLE_DEVICES names the slot's device
        out.setdefault(r["id"], []).append((r["start"], r["end"]))
    return out


def test_one_pack_per_gpu_without_sharing(tmp_path):
    records = run_holders(tmp_path, 6, "0,1,2", share=1)
    per_id = by_id(records)
    assert set(per_id) == {"0", "1", "2"}                      # every GPU is used
    for ivs in per_id.values():
        assert max_overlap(ivs) == 1                           # never two packs on one GPU
    assert max_overlap([iv for ivs in per_id.values() for iv in ivs]) == 3   # but 3 at a time


def test_sharing_allows_at_most_share_packs_per_gpu(tmp_path):
    records = run_holders(tmp_path, 8, "0,1,2", share=2)
    per_id = by_id(records)
    assert set(per_id) == {"0", "1", "2"}
    assert max(max_overlap(ivs) for ivs in per_id.values()) == 2       # shared, never by 3


def test_packs_spread_over_gpus_before_sharing(tmp_path):
    records = run_holders(tmp_path, 3, "0,1,2", share=2, hold_s=1.5)
    assert sorted(r["id"] for r in records) == ["0", "1", "2"] and {r["slot"] for r in records} == {0}


def test_busy_slots_wait_then_fail_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("ALCHEMIST_GPUS", "3")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    held = gpu_slots.acquire(share=1, lock_dir=tmp_path)
    assert held.device == "3" and os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    messages = []
    t0 = time.monotonic()
    with pytest.raises(UserError, match="no GPU slot became free within 0.3 s") as err:
        gpu_slots.acquire(share=1, lock_dir=tmp_path, wait_s=0.3, poll_s=0.05, log=messages.append)
    assert time.monotonic() - t0 >= 0.3
    assert f"pid {os.getpid()}" in str(err.value) and "waiting up to 0.3 s" in messages[0]
    held.release()                                             # free again
    again = gpu_slots.acquire(share=1, lock_dir=tmp_path, wait_s=0)
    assert again.device == "3"
    again.release()


def test_no_gpu_and_slurm_are_no_ops(tmp_path, monkeypatch):
    monkeypatch.delenv("ALCHEMIST_GPUS", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")             # no GPU visible
    assert gpu_slots.acquire(lock_dir=tmp_path / "a") is None
    monkeypatch.setenv("SLURM_JOB_ID", "42")                   # SLURM already chose the GPU
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.setenv("ALCHEMIST_GPUS", "0,1")
    assert gpu_slots.acquire(lock_dir=tmp_path / "b") is None
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def train_cli(tmp: Path, data: Path, device: str, env_extra: dict) -> tuple[dict, str]:
    spec = tmp / "pack.json"
    spec.write_text(json.dumps([dict(hidden=[16], epochs=1, seed=0)]))
    env = {**os.environ, **env_extra}
    env.pop("SLURM_JOB_ID", None)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    proc = subprocess.run([sys.executable, "-m", "alchemist", "train", "--trials", str(spec), "--data-dir",
                           str(data), "--out-dir", str(tmp / "out"), "--done", str(tmp / "done.json"),
                           "--threads", "1", "--device", device], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads((tmp / "done.json").read_text()), proc.stderr


@pytest.fixture(scope="module")
def digits_data(tmp_path_factory):
    from train_fixtures import digits
    return digits(tmp_path_factory.mktemp("digits"))


def test_cli_on_cpu_takes_no_slot(tmp_path, digits_data):
    locks = tmp_path / "locks"
    done, _ = train_cli(tmp_path, digits_data, "cpu", {"ALCHEMIST_GPUS": "0,1", "ALCHEMIST_GPU_LOCK_DIR": str(locks)})
    assert done["device"] == "cpu" and done["gpu"] is None and not locks.exists()


def test_cli_with_auto_device_takes_a_free_slot(tmp_path, digits_data):
    locks = tmp_path / "locks"
    env = {"ALCHEMIST_GPUS": "0,1", "ALCHEMIST_GPU_LOCK_DIR": str(locks), "ALCHEMIST_GPU_WAIT": "0"}
    locks.mkdir()
    fd = os.open(locks / "gpu0.0.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)                             # another pack holds GPU 0
    try:
        done, _ = train_cli(tmp_path, digits_data, "auto", env)
    finally:
        os.close(fd)
    assert done["gpu"] == "1"          # the pretended id (torch then finds no such GPU here: cpu)
    assert done["trials"] and list(done["trials"].values()) == ["completed"]
