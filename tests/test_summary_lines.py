"""The end-of-run summary's lines from a results folder (alchemist.report.summary), unit-sized:
the regression baseline, the rebalancing note and how a tie within noise was decided."""
from __future__ import annotations

import json

from alchemist.report import summary


def _results(tmp_path, prep: dict, selection: dict):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "prep.json").write_text(json.dumps(prep))
    (tmp_path / "select").mkdir()
    (tmp_path / "select" / "winner.json").write_text(json.dumps(selection))
    return summary.lines(summary.build(tmp_path, {"train": {}, "mlflow": {"enabled": False}}))


def _config(cid: str, mean: float, half: float) -> dict:
    return {"config_id": cid, "mean": mean, "ci_half_width": half, "n": 3, "params": {"lr": 0.01}}


def test_a_regression_summary_shows_the_predict_the_mean_baseline(tmp_path):
    prep = {"task": "regression", "source": {"name": "sklearn:diabetes"},
            "splits": {"train": {"rows": 282}, "val": {"rows": 71}, "test": {"rows": 89}},
            "metric": {"name": "rmse", "reason": "regression"},
            "baseline": {"predict": "train mean", "value": 150.2, "val_rmse": 77.31},
            "rebalance": {"method": "none"}}
    lines = _results(tmp_path, prep, {"mode": "min", "metric": "val_rmse", "source": "repeat",
                                      "winner": _config("a1", 55.1, 2.0), "runner_up": None})
    assert "baseline (always predict the train mean, 150.2): val_rmse 77.3100" in lines
    assert lines.index("baseline (always predict the train mean, 150.2): val_rmse 77.3100") < \
        next(i for i, line in enumerate(lines) if line.startswith("WINNER a1: val_rmse 55.1000"))


def test_rebalancing_and_a_tie_within_noise_are_explained(tmp_path):
    prep = {"task": "binary", "classes": ["0", "1"], "source": {"name": "churn.csv"},
            "splits": {"train": {"rows": 900}, "val": {"rows": 225, "class_counts": {"0": 212, "1": 13}}},
            "metric": {"name": "balanced_accuracy", "reason": "auto: the smallest class is 5.8% of train"},
            "rebalance": {"method": "class_weight", "reason": "auto: trials are ranked by balanced_accuracy"}}
    selection = {"mode": "max", "metric": "val_balanced_accuracy", "source": "repeat",
                 "winner": _config("b2", 0.74, 0.01), "runner_up": _config("c3", 0.75, 0.03),
                 "within_noise": True, "tie_break": {"rule": "smaller_ci", "text":
                 "2 configurations are within noise of the best mean; the smallest interval decided"}}
    lines = _results(tmp_path, prep, selection)
    assert ("training rebalanced: class weight (PB-4; auto: trials are ranked by balanced_accuracy)"
            in lines)
    winner = next(i for i, line in enumerate(lines) if line.startswith("WINNER b2"))
    assert lines[winner + 1] == ("  chosen how: 2 configurations are within noise of the best mean; "
                                 "the smallest interval decided")
