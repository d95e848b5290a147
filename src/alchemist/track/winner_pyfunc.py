"""The registered model (issue 22): an MLflow pyfunc that takes the user's RAW rows — a DataFrame
with the source's own columns (categoricals, missing values; ID and date columns prep dropped are
passed through, not required) — applies prep.json's encoding with the TRAIN statistics itself,
averages the winner's seeds and returns, per row, `prediction` in the target's own type and
`p_<class>` probabilities (alchemist.train.winner_predictor, what `alchemist predict` runs too).

Its artifacts: prep.json and every seed's model.pt; its code: the alchemist package
(`code_paths`), so `mlflow.pyfunc.load_model(...)` works in a fresh process with torch, pandas
and scikit-learn installed (the model's requirements pin them).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow.pyfunc
import pandas as pd


class WinnerPyfunc(mlflow.pyfunc.PythonModel):
    """Raw rows in, typed predictions and class probabilities out (see the module docstring)."""

    def load_context(self, context) -> None:
        from alchemist.train.winner_predictor import Predictor

        manifest = json.loads(Path(context.artifacts["prep"]).read_text())
        trials = sorted(p for p in Path(context.artifacts["trials"]).iterdir() if p.is_dir())
        self.predictor = Predictor(manifest, trials)

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        from alchemist.errors import UserError

        table = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        try:
            return self.predictor.frame(table.reset_index(drop=True), "model input")
        except UserError as err:               # one line naming the column, not a traceback chain
            raise ValueError(str(err)) from None


def stage_artifacts(prep_file: Path, trial_dirs: list[Path], into: Path) -> dict[str, str]:
    """prep.json and each seed's model.pt copied under `into`, as log_model's `artifacts`."""
    trials = into / "trials"
    for d in trial_dirs:
        (trials / d.name).mkdir(parents=True, exist_ok=True)
        shutil.copy2(d / "model.pt", trials / d.name / "model.pt")
    shutil.copy2(prep_file, into / "prep.json")
    return {"prep": str(into / "prep.json"), "trials": str(trials)}


def raw_example(prep: dict, data_dir: Path, rows: int = 5) -> pd.DataFrame | None:
    """A few validation rows as the user holds them (the source's columns, target left out), for
    the model's signature and input example; None for array sources (.npy/.npz, image folders:
    their input is not a table)."""
    if prep.get("format", "parquet") != "parquet":
        return None
    from alchemist.data.sources import load_source

    cfg = prep.get("config") or {}
    source = load_source(cfg["source"], cfg.get("target"), cfg.get("inputs", "auto")).frame
    from alchemist.data.split_files import split_path

    ids = pd.read_parquet(split_path(data_dir, "val", prep), columns=["_row_id"])["_row_id"].to_numpy()[:rows]
    return source.iloc[ids].drop(columns=[prep["target"]]).reset_index(drop=True)
