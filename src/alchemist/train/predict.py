"""Apply the selected models to new, real-world data (PB-33: check the model outside the test set).

The new table is encoded exactly as prep encoded train (the stored categories, medians and TRAIN
normalisation statistics from prep.json); every seed of the winner predicts and the predictions
are averaged (class probabilities for classification). When the table holds the target column,
the metric is reported too.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from alchemist.data.image_folder import EXTENSIONS
from alchemist.data.sources import read_table
from alchemist.data.guard import refuse_near_rows, refuse_test_matrix, refuse_test_rows, refuse_test_split
from alchemist.errors import UserError
from alchemist.train.winner_predictor import Predictor, encode_new


def read_arrays(data: Path, manifest: dict) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(X, y or None, lengths or None) of a .npy (inputs) or .npz (X, optional y and lengths) for
    a model prepared from an array source, X memory-mapped; a UserError naming what is wrong."""
    from alchemist.data.split_files import member_names, open_member

    if data.suffix.lower() not in (".npy", ".npz") or not data.is_file():
        raise UserError(f"--data: {data}: this model was trained on an array source; give a .npy "
                        "or an .npz file (X, optionally y)")
    try:
        names = member_names(data) if data.suffix.lower() == ".npz" else []
        if names and "X" not in names:
            raise UserError(f"--data: {data} has no array 'X' (arrays: {', '.join(names)})")
        X = open_member(data, "X" if names else None)
        y = np.asarray(open_member(data, "y")) if "y" in names else None
        lengths = np.asarray(open_member(data, "lengths")) if "lengths" in names else None
    except UserError:
        raise
    except Exception as err:                    # noqa: BLE001 - a malformed file: one line
        raise UserError(f"--data: cannot read {data}: {type(err).__name__}: {err}") from None
    if X.dtype.kind not in "biuf" or not len(X):
        raise UserError(f"--data: {data} holds {len(X)} rows of {X.dtype}; numbers expected")
    if int(np.prod(X.shape[1:])) != len(manifest["features"]):
        raise UserError(f"--data: rows of shape {X.shape[1:]}; the model was trained on "
                        f"{len(manifest['features'])} values a row")
    if (lengths is not None and lengths.shape != (len(X),)) or (y is not None and len(y) != len(X)):
        raise UserError(f"--data: {data}: 'y' and 'lengths' need one value per row of X ({len(X)})")
    return X, y, lengths


def image_inputs(data: Path, classes: list[str]) -> tuple[list[Path], list[str] | None]:
    """The image files under `data` (or `data` itself), sorted; their labels when each lies in a
    subfolder named after a class the model knows (a folder laid out like the training one)."""
    files = [data] if data.is_file() else sorted(f for f in data.rglob("*")
                                                 if f.is_file() and f.suffix.lower() in EXTENSIONS)
    if not files:
        raise UserError(f"--data: no images ({', '.join(EXTENSIONS)}) under {data}")
    labels = [f.parent.name for f in files] if data.is_dir() else None
    return files, labels if labels and all(f.parent != data for f in files) and set(labels) <= set(classes) else None


def predict_table(data: Path, data_dir: Path, trial_dirs: list[Path]) -> pd.DataFrame:
    """The winner's predictions for a new table or arrays (alchemist.train.winner_predictor),
    test rows refused in any form; its scores (the selection metric, accuracy) in `.attrs`
    when the target is present."""
    manifest = json.loads((Path(data_dir) / "prep.json").read_text())
    refuse_test_split(data, manifest, "predict", Path(data_dir))
    predictor = Predictor(manifest, trial_dirs)
    target = manifest.get("target")
    if manifest.get("image_folder") and (Path(data).is_dir() or Path(data).suffix.lower() in EXTENSIONS):
        files, labels = image_inputs(Path(data), manifest["classes"])
        encoded = predictor.images([str(f) for f in files])
        refuse_test_matrix(encoded, data_dir, "predict", str(data), 4096)
        refuse_near_rows(encoded, Path(data_dir), manifest, "predict", str(data))
        out = pd.concat([pd.DataFrame({"file": [str(f) for f in files]}), predictor.outputs(encoded)], axis=1)
        truth = None if labels is None else pd.Series(labels, name=target)
    elif manifest.get("format") == "npz":
        X, labels, lengths = read_arrays(Path(data), manifest)
        encoded = predictor.arrays(X, lengths)
        refuse_test_matrix(encoded, data_dir, "predict", str(data), 4096)
        for form in (encoded, X.reshape(len(X), -1)):       # as given, too: an encoded copy of test rows
            refuse_near_rows(form, Path(data_dir), manifest, "predict", str(data))
        out = predictor.outputs(encoded)
        truth = None if labels is None else pd.Series(labels, name=target)
    else:
        table = read_table(data, key="--data")
        features, encoded = encode_new(table, manifest)
        rows = manifest.get("test_rows") or {}
        if rows:
            refuse_test_rows(features, rows["raw_columns"], "raw", Path(data_dir), "predict", str(data),
                             rows["raw_numeric"])
        forms = [encoded]           # as given, too, when it has the encoded columns (a test.* export)
        if all(c in table.columns for c in manifest["features"]):
            forms.append(table[manifest["features"]].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32))
        for form in forms:
            refuse_near_rows(form, Path(data_dir), manifest, "predict", str(data))
        out = pd.concat([table[predictor.id_columns(table)], predictor.outputs(encoded, table.index)], axis=1)
        truth = table[target] if target in table.columns else None
    if truth is not None:
        out.attrs.update(predictor.scores(out, truth))
    return out
