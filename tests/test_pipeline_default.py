"""The default pipeline end to end: prep → coarse → fine → repeat → select on digits (issue 4)."""
from __future__ import annotations

import json

import pandas as pd

from conftest import nothing_to_do


def test_default_pipeline_reaches_a_winner_over_five_seeds(default_pipeline):
    wf = default_pipeline
    results = wf.root / "results"
    winner = json.loads((results / "select/winner.json").read_text())
    best = winner["winner"]
    assert best["n"] == 5 and best["mean"] >= 0.97, best
    assert best["ci"][0] <= best["mean"] <= best["ci"][1]
    assert isinstance(winner["within_noise"], bool)
    assert winner["metric"] == "val_accuracy" and winner["source"] == "repeat"
    # the winner's mean ± CI is printed by the run and kept in the log
    assert f"winner {best['config_id']}: val_accuracy" in (results / "logs/select.log").read_text()


def test_the_run_ends_with_the_summary(default_pipeline):
    """The last lines of the terminal (and results/summary.md): the metric by name and
    direction, the winner with its CI and its settings, the runner-up, where to look next."""
    wf = default_pipeline
    winner = json.loads((wf.root / "results/select/winner.json").read_text())
    w, r = winner["winner"], winner["runner_up"]
    text = "\n".join(wf.proc.stdout.strip().splitlines()[-12:])    # after it, on stderr:
    assert wf.proc.stderr.strip().splitlines()[-1].startswith("Elapsed time")  # Snakemake's 2 lines
    assert "selection metric: val_accuracy (higher is better)" in text
    assert f"WINNER {w['config_id']}: val_accuracy {w['mean']:.4f} ± {w['ci_half_width']:.4f}" in text
    assert "settings that differ from the defaults:" in text and "lr=" in text
    assert f"runner-up {r['config_id']}" in text and "results/repeat/leaderboard.csv" in text
    assert "#/experiments/" in text and "workflowType=machine_learning" in text
    assert "lockbox: sealed" in text and "majority-class baseline" in text
    md = (wf.root / "results/summary.md").read_text()
    assert f"WINNER {w['config_id']}" in md and md.startswith("# alchemist")


def test_training_logs_a_progress_line_per_epoch(default_pipeline):
    logs = sorted((default_pipeline.root / "results/logs/train/fine").glob("*.log"))
    lines = [l for l in logs[0].read_text().splitlines() if " · epoch " in l]
    assert [l.split(" · ")[1] for l in lines] == [f"epoch {e}/30" for e in range(1, 31)]
    assert "best val_accuracy" in lines[-1] and "s elapsed" in lines[-1] and "left" in lines[-1]


def test_stages_narrow_and_tables_are_consistent(default_pipeline):
    results = default_pipeline.root / "results"
    coarse = pd.read_parquet(results / "coarse/trials.parquet")
    fine = pd.read_parquet(results / "fine/trials.parquet")
    repeat = pd.read_parquet(results / "repeat/trials.parquet")
    assert len(coarse) == 32 and len(fine) == 16 and len(repeat) == 15
    assert set(coarse["p.data"]) == {"train_coarse"} and set(fine["p.data"]) == {"train"}
    # fine ranges lie inside the coarse ranges (coarse → fine narrowing, PB-29)
    for key in ("p.lr", "p.weight_decay"):
        assert coarse[key].min() <= fine[key].min() and fine[key].max() <= coarse[key].max()
        assert fine[key].max() / fine[key].min() < coarse[key].max() / coarse[key].min()
    seeds = pd.read_parquet(results / "repeat/seeds.parquet")
    assert len(seeds) == 3 and set(seeds["n"]) == {5}
    board = pd.read_csv(results / "repeat/leaderboard.csv")
    assert board["val_accuracy_mean"].is_monotonic_decreasing and board["rank"].tolist() == [1, 2, 3]
    assert {"lr", "weight_decay", "dropout"} <= set(board.columns)      # one column per varied setting
    figures = {p.name for p in (results / "plots/coarse").iterdir()}
    assert {"importance.png", "history.png", "learning_curves.png", "metric_vs_params.png"} <= figures
    for trial_id in repeat["trial_id"]:
        folder = results / "repeat/trials" / trial_id
        assert (folder / "metrics.parquet").exists() and (folder / "summary.json").exists()


def test_default_pipeline_rerun_has_nothing_to_do(default_pipeline):
    assert nothing_to_do(default_pipeline.run())


def test_predict_on_new_data_reuses_the_train_encoding(default_pipeline, tmp_path):
    """PB-33: raw rows (here: the validation rows, as they come from the source) are encoded
    with the stored train statistics and predicted by the winner's seeds."""
    import numpy as np
    import subprocess

    from alchemist.data.sources import load_source
    from alchemist.train.winner_predictor import encode_new

    root = default_pipeline.root
    manifest = json.loads((root / "results/data/prep.json").read_text())
    val = pd.read_parquet(root / "results/data/val.parquet")
    raw = load_source("sklearn:digits", None).frame.iloc[val["_row_id"].to_numpy()]
    assert np.allclose(encode_new(raw, manifest)[1], val[manifest["features"]].to_numpy(), atol=1e-5)
    raw.to_csv(tmp_path / "new.csv", index=False)
    proc = subprocess.run(["alchemist", "predict", "--data", str(tmp_path / "new.csv"),
                           "--out", str(tmp_path / "pred.csv")], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == len(raw) and {"prediction", "p_0", "p_9"} <= set(pred.columns)
    accuracy = (pred["prediction"].to_numpy() == raw["target"].to_numpy()).mean()
    assert accuracy >= 0.95 and f"accuracy {accuracy:.4f}" in proc.stdout


def test_the_readme_loads_the_registered_winner_and_predicts_raw_rows(default_pipeline):
    """The README's load-and-predict lines, verbatim, in a fresh process in the project: the
    registered pyfunc (alias `champion`) takes raw sklearn digits rows and scores them as well as
    the winner does; the version says what it is."""
    import subprocess
    import sys

    from mlflow import MlflowClient

    from conftest import REPO

    readme = (REPO / "README.md").read_text()
    code = readme.split("## The winner as a model", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    proc = subprocess.run([sys.executable, "-c", code], cwd=default_pipeline.root, capture_output=True,
                          text=True, env=default_pipeline.env)
    assert proc.returncode == 0 and "prediction" in proc.stdout, proc.stderr[-2000:]
    # the same model on the validation rows, raw as sklearn gives them (never the test rows)
    val_ids = pd.read_parquet(default_pipeline.root / "results/data/val.parquet", columns=["_row_id"])["_row_id"]
    score = code.replace('print(model.predict(X.head(3))[["prediction", "p_0", "p_1"]])',
                         f"rows = {val_ids.tolist()}\n"
                         "print((model.predict(X.iloc[rows])['prediction'].to_numpy() == y.iloc[rows].to_numpy()).mean())")
    proc = subprocess.run([sys.executable, "-c", score], cwd=default_pipeline.root, capture_output=True,
                          text=True, env=default_pipeline.env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    accuracy = float(proc.stdout.strip().splitlines()[-1])
    winner = json.loads((default_pipeline.root / "results/select/winner.json").read_text())["winner"]
    assert accuracy >= winner["mean"] - 0.02, (accuracy, winner["mean"])     # seeds averaged
    client = MlflowClient(f"sqlite:///{default_pipeline.root / 'results/mlflow.db'}")
    version = client.get_model_version_by_alias("alchemist-winner", "champion")
    assert f"val_accuracy {winner['mean']:.4f}" in version.description and \
        version.tags["alchemist.winner_config_id"] == winner["config_id"]
    print(f"\nREADME snippet: registered winner on the raw validation rows: accuracy {accuracy:.4f}; "
          f"winner val_accuracy {winner['mean']:.4f}")
