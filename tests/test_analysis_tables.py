"""The stage table and leaderboard carry every named metric: a regression pack trained by the
real `alchemist train` CLI gives `kept_val_r2` per trial and `val_r2_mean` per configuration
beside the selection metric's `val_rmse_mean`; a classification pack gives balanced accuracy,
macro-F1 and ROC-AUC at each trial's best epoch."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from train_fixtures import diabetes, digits_binary

from alchemist.analysis.aggregate import leaderboard, seeds_table
from alchemist.analysis.tables import trials_table
from alchemist.cli import main


def train_pack(data, tmp_path, trials: dict) -> pd.DataFrame:
    plan = {"stage": "coarse", "trials": trials, "packs": {"p1": list(trials)}}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    assert main(["train", "--plan", str(tmp_path / "plan.json"), "--pack", "p1", "--data-dir",
                 str(data), "--out-dir", str(tmp_path / "trials"), "--done",
                 str(tmp_path / "p1.json"), "--threads", "1"]) == 0
    return trials_table([tmp_path / "p1.json"], tmp_path / "trials")


def test_regression_tables_report_r2_beside_rmse(tmp_path):
    data = diabetes(tmp_path / "diabetes")
    trials = {f"t{lr}{seed}": dict(hidden=[32], epochs=8, lr=lr, seed=seed, early_stopping=False)
              for lr in (1e-3, 3e-3) for seed in (0, 1)}
    table = train_pack(data, tmp_path, trials)
    assert set(table["metric"]) == {"rmse"} and table["kept_val_r2"].between(-5, 1).all()
    summary = json.loads((tmp_path / "trials" / "t0.0030" / "summary.json").read_text())
    assert summary["kept_epoch_metrics"]["val_r2"] == pytest.approx(table.set_index("trial_id")
                                                                    .loc["t0.0030", "kept_val_r2"])
    board = leaderboard(seeds_table(table), table)
    assert {"val_rmse_mean", "val_r2_mean", "lr"} <= set(board.columns) and len(board) == 2
    for _, config in board.iterrows():
        ids = config["trial_ids"].split(",")
        assert config["val_r2_mean"] == pytest.approx(table.set_index("trial_id").loc[ids, "kept_val_r2"].mean())
    # the better RMSE ranks first and has the better R²
    assert board["val_rmse_mean"].is_monotonic_increasing and board["val_r2_mean"].is_monotonic_decreasing


def test_classification_tables_report_the_other_named_metrics(tmp_path):
    data = digits_binary(tmp_path / "binary")
    table = train_pack(data, tmp_path, {"a": dict(epochs=3, seed=0), "b": dict(epochs=3, seed=1)})
    for name in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc"):
        assert table[f"kept_val_{name}"].between(0.5, 1).all(), name
    assert (table["kept_val_accuracy"] == table["kept_val_metric"]).all()   # default metric
    board = leaderboard(seeds_table(table), table)
    assert {"val_accuracy_mean", "val_balanced_accuracy_mean", "val_roc_auc_mean"} <= set(board.columns)
    assert "val_accuracy_mean_mean" not in board.columns
