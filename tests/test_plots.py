"""The sweep's figures (PB-22, PB-27, PB-29, PB-31, PB-13): valid PNGs, axes and statistics."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from alchemist.report import plots
from alchemist.analysis.tables import flatten, stage_table
from alchemist.cli import main
from mlflow_fixtures import make_stage

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    return path.exists() and path.read_bytes()[:8] == PNG and path.stat().st_size > 5_000


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("plots")
    make_stage(root, "coarse", 6, epochs=10, statuses=("completed", "diverged", "failed"))
    make_stage(root, "fine", 4, epochs=12, data="train")
    make_stage(root, "repeat", 6, epochs=6, seeds=3, data="train")
    lr = np.logspace(-6, 0, 60)
    pd.DataFrame({"lr": lr, "loss": np.r_[np.linspace(2.3, 0.5, 50), np.full(9, 5.0), np.inf]}
                 ).to_parquet(root / "coarse" / "lr_find.parquet")
    (root / "coarse" / "lr_find.json").write_text(json.dumps({"suggested_lr": 1e-3}))
    return root


def test_flatten_and_trial_table(results):
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x"}) == {"a.b": 1, "a.c": "[1,2]", "d": "x"}
    table = stage_table(results / "coarse")
    assert len(table) == 6 and set(table["status"]) == {"completed", "diverged", "failed"}
    assert {"trial_id", "kept_val_metric", "kept_val_loss", "mode", "params_json", "p.lr",
            "p.hidden"} <= set(table.columns)
    assert json.loads(table["params_json"][0])["trial_id"] == table["trial_id"][0]


@pytest.mark.parametrize("name, values, log", [
    ("lr", [1e-3, 2e-3], True),                # log-scaled setting (PB-27), whatever its span
    ("weight_decay", [0.0, 1e-4, 1e-2], True),
    ("dropout", [0.001, 0.5], False),          # dropout-like: linear (PB-27)
    ("batch_size", [16, 512], True),           # spans 1.5 decades
    ("batch_size", [32, 128], False),
    ("init_scale", [-1.0, 1.0], False),
])
def test_log_axis_rule(name, values, log):
    assert plots.use_log_axis(name, pd.Series(values)) is log


def test_learning_curve_marks_diverged_epochs(tmp_path):
    df = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, 0.5, np.nan],
                       "val_loss": [1.1, 0.6, np.inf], "train_metric": [0.5, 0.7, 0.1],
                       "val_metric": [0.4, 0.6, 0.1]})
    assert _is_png(plots.learning_curve(df, tmp_path / "c.png", title="t", kept_epoch=2))


def test_stage_figures(results, tmp_path):
    coarse, fine = stage_table(results / "coarse"), stage_table(results / "fine")
    assert _is_png(plots.metric_vs_params(coarse, tmp_path / "m.png"))
    assert _is_png(plots.narrowing(coarse, fine, tmp_path / "n.png", ("coarse", "fine")))
    assert _is_png(plots.seed_spread(stage_table(results / "repeat"), tmp_path / "s.png"))
    lr = pd.read_parquet(results / "coarse" / "lr_find.parquet")
    assert _is_png(plots.lr_find(lr, 1e-3, tmp_path / "lr.png"))
    empty = coarse.assign(**{c: 1 for c in coarse.columns if c.startswith("p.")})
    assert _is_png(plots.metric_vs_params(empty, tmp_path / "none.png"))


def test_plot_command(results, tmp_path):
    out = tmp_path / "figs"
    assert main(["plot", "--stage-dir", str(results / "coarse"), "--out", str(out), "--curves",
                 "--manifest", str(out / "manifest.json")]) == 0
    made = json.loads((out / "manifest.json").read_text())
    assert {"metric_vs_params.png", "lr_find.png"} <= {p.rsplit("/", 1)[1] for p in made}
    assert len(list((out / "curves").glob("*.png"))) == 6
    assert main(["plot", "--stage-dir", str(results / "fine"), "--out", str(out / "fine"),
                 "--previous", str(results / "coarse")]) == 0
    assert _is_png(out / "fine" / "narrowing.png")
    assert main(["plot", "--stage-dir", str(results / "repeat"), "--out", str(out / "r")]) == 0
    assert _is_png(out / "r" / "seed_spread.png") and not (out / "r" / "narrowing.png").exists()


def test_importance_is_skipped_when_every_trial_scores_the_same(tmp_path):
    """fANOVA cannot split zero variance (optuna raises): the history is still drawn and the
    stage's figures do not fail (a constant metric: e.g. every trial at the majority baseline)."""
    from alchemist.report.figures import importance_and_history

    make_stage(tmp_path, "coarse", 10, epochs=3)
    table = stage_table(tmp_path / "coarse").assign(kept_val_metric=0.5)
    made = importance_and_history(table, tmp_path / "coarse", tmp_path / "figs")
    assert [p.name for p in made][0] == "history.png" and "importance.png" not in [p.name for p in made]


def test_a_searched_stage_gets_contour_and_parallel_coordinates(tmp_path):
    """Optuna's contour (every pair of searched settings) and parallel-coordinate figures, with
    the metric's name; the contour only where two or more settings were searched."""
    from alchemist.report.figures import importance_and_history

    make_stage(tmp_path, "coarse", 10, epochs=3)
    table = stage_table(tmp_path / "coarse")
    made = {p.name: p for p in importance_and_history(table, tmp_path / "coarse", tmp_path / "figs")}
    assert {"contour.png", "parallel_coordinates.png"} <= set(made)
    assert all(_is_png(p) for p in made.values())
