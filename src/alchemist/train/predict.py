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
import torch

from alchemist.data.encode import FeatureEncoder
from alchemist.data.hygiene import apply
from alchemist.data.sources import read_table
from alchemist.data.guard import refuse_test_rows, refuse_test_split
from alchemist.errors import UserError


def encode_new(table: pd.DataFrame, manifest: dict) -> tuple[pd.DataFrame, np.ndarray]:
    """(the table's features cleaned as prep cleaned train (data.hygiene), their encoding)."""
    report = manifest.get("hygiene")
    if report:
        missing = [c for c in report["kept"] if c not in table.columns]
        if missing:
            raise UserError(f"--data: column '{missing[0]}' (used in training) is missing")
        table = apply(table, report, "--data")
    enc = FeatureEncoder.from_manifest(manifest)
    needed = enc.numeric + list(enc.categorical)
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise UserError(f"--data: column '{missing[0]}' (used in training) is missing")
    return table, enc.transform(table)


def predict_table(data: Path, data_dir: Path, trial_dirs: list[Path]) -> pd.DataFrame:
    from alchemist.train.evaluate import WinnerModel

    manifest = json.loads((Path(data_dir) / "prep.json").read_text())
    refuse_test_split(data, manifest, "predict", Path(data_dir))
    table = read_table(data, key="--data")
    features, encoded = encode_new(table, manifest)
    X = torch.from_numpy(np.ascontiguousarray(encoded))
    rows = manifest.get("test_rows") or {}
    if rows:
        refuse_test_rows(features, rows["raw_columns"], "raw", Path(data_dir), "predict", str(data),
                         rows["raw_numeric"])
    task, classes = manifest["task"], manifest["classes"]
    model = WinnerModel(trial_dirs, regression=task == "regression").eval()
    outputs = model.predict(X)
    out = pd.DataFrame(index=table.index)
    if task == "regression":
        out["prediction"] = outputs[:, 0].numpy()
    else:
        probs = outputs
        for i, label in enumerate(classes):
            out[f"p_{label}"] = probs[:, i].numpy()
        out["prediction"] = [classes[i] for i in probs.argmax(1).tolist()]
    target = manifest.get("target")
    if target in table.columns:
        truth = table[target]
        if task == "regression":
            out.attrs["rmse"] = float(np.sqrt(np.mean((truth.to_numpy(float) - out["prediction"]) ** 2)))
        else:
            out.attrs["accuracy"] = float((truth.astype(str).to_numpy() == out["prediction"].astype(str)).mean())
    return out
