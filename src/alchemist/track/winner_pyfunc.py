"""The registered model (issue 22): an MLflow pyfunc that takes the user's RAW rows — a DataFrame
with the source's own columns (categoricals, missing values; ID and date columns prep dropped are
passed through, not required) — applies prep.json's encoding with the TRAIN statistics itself,
averages the winner's seeds and returns, per row, `prediction` in the target's own type and
`p_<class>` probabilities (alchemist.train.winner_predictor, what `alchemist predict` runs too).

A model trained on an image folder takes a column `image` of image files (paths or bytes, any
size: decoded, resized and made grey or RGB as prep did); one trained on .npy/.npz arrays takes
an ndarray of raw rows (normalised inside).

Its artifacts: prep.json and every seed's model.pt; its code: the alchemist package
(`code_paths`), so `mlflow.pyfunc.load_model(...)` works in a fresh process with torch, pandas
and scikit-learn installed (the model's requirements pin them).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd


class WinnerPyfunc(mlflow.pyfunc.PythonModel):
    """Raw rows in, typed predictions and class probabilities out (see the module docstring)."""

    def load_context(self, context) -> None:
        """Build the predictor from the model's artifacts: prep.json and each seed's trial folder."""
        from alchemist.train.winner_predictor import Predictor

        manifest = json.loads(Path(context.artifacts["prep"]).read_text())
        trials = sorted(p for p in Path(context.artifacts["trials"]).iterdir() if p.is_dir())
        self.predictor = Predictor(manifest, trials)

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        """Per raw row (DataFrame, dict or ndarray): `prediction` and `p_<class>` (a table's ID columns
        too); bad input is one ValueError."""
        from alchemist.errors import UserError

        try:
            if isinstance(model_input, np.ndarray):          # an array source's raw rows
                return self.predictor.outputs(self.predictor.arrays(model_input))
            table = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
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


def raw_example(prep: dict, data_dir: Path, rows: int = 5):
    """A few validation rows as the user holds them, for the model's signature and input example:
    a table's source columns (target left out); an image folder's files (a column `image` of
    paths); an array source's raw rows (an ndarray)."""
    from alchemist.data.split_files import open_member, split_path

    cfg = prep.get("config") or {}
    if prep.get("format", "parquet") == "npz":
        ids = np.asarray(open_member(split_path(data_dir, "val", prep), "_row_id"))[:rows]
        if prep.get("image_folder"):
            from alchemist.data.image_folder import image_files

            files = image_files(cfg["source"])
            return pd.DataFrame({"image": [str(files[i][0]) for i in ids]})
        from alchemist.data.arrays import load

        return np.asarray(load(cfg).X[np.sort(ids)], dtype=np.float32)
    from alchemist.data.sources import load_source

    source = load_source(cfg["source"], cfg.get("target"), cfg.get("inputs", "auto")).frame
    ids = pd.read_parquet(split_path(data_dir, "val", prep), columns=["_row_id"])["_row_id"].to_numpy()[:rows]
    return source.iloc[ids].drop(columns=[prep["target"]]).reset_index(drop=True)
