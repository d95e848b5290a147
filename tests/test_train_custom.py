"""A user's nn.Module factory in a pack: vectorised with torch.func (stack_module_state +
functional_call + vmap) and equal to each trial run alone; the loop fallback, named in the log,
where vmap cannot give the solo result (dropout, BatchNorm)."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from train_fixtures import digits_dir, trainer  # noqa: F401

from alchemist.cli import main
from alchemist.train.custom import CustomPack, VmapPack
from alchemist.train.evaluate import evaluate


def two_layer(n_in, n_out, cfg):
    return nn.Sequential(nn.Linear(n_in, 32), nn.GELU(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, n_out))


def with_dropout(n_in, n_out, cfg):
    return nn.Sequential(nn.Linear(n_in, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, n_out))


def with_batchnorm(n_in, n_out, cfg):
    return nn.Sequential(nn.Linear(n_in, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, n_out))


CFGS = [dict(model="test_train_custom:two_layer", lr=lr, weight_decay=wd, seed=s, epochs=4,
             early_stopping=False, optimizer=opt)
        for lr, wd, s, opt in [(1e-3, 0.0, 0, "adam"), (3e-3, 1e-4, 1, "adam"), (1e-2, 0.0, 2, "adam")]]


def test_vmapped_custom_pack_equals_each_trial_alone(digits_dir):  # noqa: F811
    pack = trainer(digits_dir, CFGS)
    assert isinstance(pack.model, VmapPack)
    pack.fit()
    finals = [rows[-1]["val_loss"] for rows in pack.rows]
    assert len(set(finals)) == 3
    for k, cfg in enumerate(CFGS):
        solo = trainer(digits_dir, [cfg])
        solo.fit()
        assert [r["train_loss"] for r in solo.rows[0]] == pytest.approx(
            [r["train_loss"] for r in pack.rows[k]], rel=1e-5)
        assert solo.rows[0][-1]["val_loss"] == pytest.approx(finals[k], rel=1e-5)
    assert max(rows[-1]["val_metric"] for rows in pack.rows) > 0.8


@pytest.mark.parametrize("factory, reason", [("with_dropout", "dropout"), ("with_batchnorm", "BatchNorm")])
def test_the_loop_fallback_is_named(digits_dir, capsys, factory, reason):  # noqa: F811
    cfgs = [dict(model=f"test_train_custom:{factory}", seed=s, epochs=1) for s in (0, 1)]
    pack = trainer(digits_dir, cfgs)
    assert isinstance(pack.model, CustomPack)
    err = capsys.readouterr().err
    assert "not vectorised" in err and reason in err


def test_a_vmapped_trial_is_saved_and_evaluated_alone(digits_dir, tmp_path):  # noqa: F811
    plan = {"stage": "coarse", "trials": {"a": CFGS[0], "b": CFGS[1]}, "packs": {"p": ["a", "b"]}}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    assert main(["train", "--plan", str(tmp_path / "plan.json"), "--pack", "p", "--data-dir",
                 str(digits_dir), "--out-dir", str(tmp_path / "t"), "--done", str(tmp_path / "d.json"),
                 "--threads", "1"]) == 0
    from alchemist.train.data import load_split, read_manifest

    prep = read_manifest(digits_dir)
    val = load_split(digits_dir, "val", prep)
    summary = json.loads((tmp_path / "t" / "b" / "summary.json").read_text())
    result = evaluate(tmp_path / "t" / "b", val.X, val.y)
    assert result["value"] == pytest.approx(summary["final_val_metric"], rel=1e-6)
    assert torch.is_tensor(val.X)


def test_the_gpu_check_script_runs(tmp_path):
    """benchmarks/gpu_check.py is what a lent GPU machine runs in one call: kept runnable here
    (its CPU smoke run: tiny packs, one epoch, the CPU comparison trivially equal)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    proc = subprocess.run([sys.executable, str(script), "--device", "cpu", "--sizes", "2", "--epochs", "1",
                           "--solo-sample", "1", "--models", "mlp", "custom"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "all trials within tolerance" in proc.stdout and "custom " in proc.stdout
    assert "not vectorised" not in proc.stderr
