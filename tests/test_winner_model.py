"""The winner as a model people can use (issue 22): raw rows in, labels in the target's own type
out — through `alchemist predict` and through the registered MLflow pyfunc, which must agree."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from alchemist.config import validate
from alchemist.data.prep import prepare, write


def _table(labels, n: int = 240) -> pd.DataFrame:
    """Two numeric columns (one with missing values), a categorical one, an ID column (prep drops
    it), a column named in data.columns.drop and a target of `labels` that the numbers decide."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=n), rng.normal(size=n)
    cls = (a + 0.5 * b > 0).astype(int)
    b[::17] = np.nan
    return pd.DataFrame({"id": [f"row-{i}" for i in range(n)], "batch": np.arange(n) % 7, "a": a, "b": b,
                         "colour": rng.choice(["red", "green", "blue"], n),
                         "y": [labels[c] for c in cls]})


def _trained(tmp_path, table: pd.DataFrame):
    """prep + two seeds of a small MLP trained on `table`: (prep.json, trial dirs)."""
    table.to_csv(tmp_path / "source.csv", index=False)
    cfg = validate({"data": {"source": str(tmp_path / "source.csv"), "target": "y", "seed": 0,
                             "columns": {"drop": ["batch"]}}})["data"]
    write(prepare(cfg), tmp_path / "data")
    trials = [{"trial_id": f"s{k}", "data": "train", "epochs": 12, "hidden": [16], "lr": 0.03, "seed": k}
              for k in range(2)]
    (tmp_path / "trials.json").write_text(json.dumps(trials))
    proc = subprocess.run([sys.executable, "-m", "alchemist", "train", "--trials", str(tmp_path / "trials.json"),
                           "--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "out"),
                           "--threads", "1"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads((tmp_path / "data/prep.json").read_text())
    return manifest, [tmp_path / "out" / t["trial_id"] for t in trials]


@pytest.mark.parametrize("labels, kind", [({0: 3, 1: 7}, "i"), ({0: "no", 1: "yes"}, "O"),
                                          ({0: False, 1: True}, "b")])
def test_labels_come_back_in_their_own_type(tmp_path, labels, kind):
    from alchemist.train.winner_predictor import Predictor

    table = _table(labels)
    manifest, dirs = _trained(tmp_path, table)
    out = Predictor(manifest, dirs).frame(table.drop(columns=["y"]))
    assert list(out.columns[:3]) == ["id", "batch", "prediction"] and (out["id"] == table["id"]).all()
    assert set(out["prediction"]) <= set(labels.values())
    assert out["prediction"].dtype.kind == kind
    assert all(isinstance(v, type(labels[0])) for v in out["prediction"].tolist())
    assert np.allclose(out[[c for c in out.columns if c.startswith("p_")]].sum(1), 1, atol=1e-5)
    accuracy = float((out["prediction"].to_numpy() == table["y"].to_numpy()).mean())
    assert accuracy > 0.85
    # the scores name the selection metric; labels read back as text (a CSV) score the same
    scores = Predictor(manifest, dirs).scores(out, table["y"].astype(str))
    assert scores["accuracy"] == pytest.approx(accuracy) and manifest["metric"]["name"] in scores


def test_the_pyfunc_on_raw_rows_equals_alchemist_predict(tmp_path, monkeypatch):
    """The pyfunc, logged and loaded back in a fresh process, predicts raw rows (a categorical
    column, missing values, an ID column) exactly as `alchemist predict` does; a missing column is
    one error naming it."""
    import mlflow

    from alchemist.track.selection import _log_pyfunc

    table = _table({0: "no", 1: "yes"})
    manifest, dirs = _trained(tmp_path, table)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)    # not mlflow.set_tracking_uri: it outlives the test
    exp = mlflow.create_experiment("t", artifact_location=(tmp_path / "art").as_uri())
    with mlflow.start_run(experiment_id=exp):
        _log_pyfunc(table.drop(columns=["y"]).head(5), tmp_path / "data/prep.json", dirs, "winner-t")
    val_ids = pd.read_parquet(tmp_path / "data/val.parquet", columns=["_row_id"])["_row_id"]
    new = table.iloc[val_ids.to_numpy()]                  # not test rows: predict refuses those
    new.to_csv(tmp_path / "new.csv", index=False)
    script = (f"import mlflow, pandas as pd; mlflow.set_tracking_uri({uri!r}); "
              "m = mlflow.pyfunc.load_model('models:/winner-t/1'); "
              f"m.predict(pd.read_csv({str(tmp_path / 'new.csv')!r}).drop(columns=['y']))"
              f".to_csv({str(tmp_path / 'pyfunc.csv')!r}, index=False)")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    (tmp_path / "winner.json").write_text(json.dumps({"winner": {"trial_ids": [d.name for d in dirs]}}))
    cli = subprocess.run([sys.executable, "-m", "alchemist", "predict", "--data", str(tmp_path / "new.csv"),
                          "--out", str(tmp_path / "cli.csv"), "--data-dir", str(tmp_path / "data"),
                          "--winner", str(tmp_path / "winner.json"), "--trials-dir", str(tmp_path / "out")],
                         capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "accuracy" in cli.stdout
    pyfunc, by_cli = pd.read_csv(tmp_path / "pyfunc.csv"), pd.read_csv(tmp_path / "cli.csv")
    pd.testing.assert_frame_equal(pyfunc, by_cli, check_exact=False, atol=1e-6)
    missing = subprocess.run([sys.executable, "-c", script.replace("drop(columns=['y'])",
                                                                   "drop(columns=['y', 'colour'])")],
                             capture_output=True, text=True, cwd=tmp_path)
    assert missing.returncode != 0 and "'colour'" in missing.stderr.strip().splitlines()[-1]
