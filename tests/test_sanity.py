"""`alchemist sanity` (PB-24): initial loss ≈ ln C, and overfitting one tiny batch."""
from __future__ import annotations

import json
import math

from train_fixtures import digits_dir  # noqa: F401

from alchemist.cli import main


def test_sanity_passes_on_a_working_model(digits_dir, tmp_path):  # noqa: F811
    out = tmp_path / "sanity.json"
    assert main(["sanity", "--data-dir", str(digits_dir), "--out", str(out), "--threads", "1",
                 "--set", "lr=0.01", "--set", "init=\"torch\"", "--strict"]) == 0
    report = json.loads(out.read_text())
    assert report["initial_loss"]["expected"] == math.log(10)
    assert report["initial_loss"]["ok"] and report["overfit_tiny_batch"]["ok"] and report["passed"]
    assert report["overfit_tiny_batch"]["final_loss"] < 0.05 * report["overfit_tiny_batch"]["initial_loss"]


def test_sanity_fails_when_the_model_cannot_learn(digits_dir, tmp_path):  # noqa: F811
    out = tmp_path / "sanity.json"
    code = main(["sanity", "--data-dir", str(digits_dir), "--out", str(out), "--threads", "1",
                 "--set", "lr=1e-9", "--set", "init=\"scaled\"", "--set", "init_scale=30", "--strict"])
    report = json.loads(out.read_text())
    assert code == 1 and not report["passed"]
    assert not report["initial_loss"]["ok"]            # huge init: loss far above ln 10
    assert not report["overfit_tiny_batch"]["ok"]      # LR 1e-9 cannot fit anything
    assert "PB-24" in report["advice"]
