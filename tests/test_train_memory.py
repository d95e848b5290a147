"""A training job's memory (alchemist.train.memory, alchemist.train.pack): a pack that does not
fit in resources.train.mem_mb is retried as smaller packs and finishes; one trial that does not
fit is one line naming the limit and the setting; and the pack-size probe (alchemist.train.probe)
measures on real data and caches its figures. Each run is a process of its own (the cap is
process-wide)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from train_fixtures import digits_dir  # noqa: F401

WIDE = {"hidden": [4096, 4096], "epochs": 1, "batch_size": 256, "data": "train_coarse"}  # ~270 MB a trial


def _train(tmp_path, digits_dir, trials, mem_mb):  # noqa: F811
    spec = tmp_path / "pack.json"
    spec.write_text(json.dumps(trials))
    return subprocess.run(
        [sys.executable, "-m", "alchemist", "train", "--trials", str(spec), "--data-dir", str(digits_dir),
         "--out-dir", str(tmp_path / "trials"), "--done", str(tmp_path / "done.json"), "--threads", "1",
         "--device", "cpu", "--mem-mb", str(mem_mb)], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_pack_that_does_not_fit_is_retried_smaller_and_finishes(tmp_path, digits_dir):  # noqa: F811
    proc = _train(tmp_path, digits_dir, [dict(WIDE, seed=s) for s in range(4)], 1500)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "4 trials ran out of memory within resources.train.mem_mb = 1500 MB" in proc.stderr
    assert "retrying as packs of 2 and 2" in proc.stderr and "Traceback" not in proc.stderr
    done = json.loads((tmp_path / "done.json").read_text())
    assert sorted(done["trials"].values()) == ["completed"] * 4
    for tid in done["trials"]:
        assert (tmp_path / "trials" / tid / "summary.json").exists()


def test_one_trial_that_does_not_fit_is_one_line(tmp_path, digits_dir):  # noqa: F811
    proc = _train(tmp_path, digits_dir, [dict(WIDE, seed=0)], 700)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("alchemist train: error: trial ") and "alone needs more memory than " \
        "resources.train.mem_mb = 700 MB" in last and "raise resources.train.mem_mb" in last, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "done.json").exists()


def test_the_probe_measures_real_steps_and_caches_them(tmp_path, digits_dir):  # noqa: F811
    def probe():
        out = subprocess.run(
            [sys.executable, "-m", "alchemist", "probe", "--trial", json.dumps({"hidden": [64]}),
             "--data-dir", str(digits_dir), "--probe-dir", str(tmp_path / "probe"), "--n-max", "4",
             "--device", "cpu", "--threads", "1", "--mem-mb", "3000"],
            capture_output=True, text=True, timeout=300, check=True)
        return json.loads(out.stdout)

    first = probe()
    sizes = first["sizes"]
    assert [s["K"] for s in sizes] == [1, 2, 4][:len(sizes)] and len(sizes) >= 2
    assert all(s["step_s"] > 0 and s["eval_s"] > 0 and 50 < s["peak_mb"] < 3000 for s in sizes)
    assert first["label"] == "mlp 1×8×8 batch 64 on cpu (1 thread)" and first["startup_s"] > 0
    assert first["limit_mb"] == 3000 and first["train_rows"] > 0 and not first.get("cached")
    assert list((tmp_path / "probe").glob("*.json")) == [tmp_path / "probe" / f"{first['key']}.json"]
    again = probe()
    assert again["cached"] and again["sizes"] == sizes
