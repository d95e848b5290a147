"""The winner on raw inputs: what `alchemist predict` and the registered MLflow model share.

A table with the source's own columns goes in (categoricals, missing values; ID and date columns
prep dropped are passed through, never required); prep.json's decisions and TRAIN statistics
encode it exactly as prep encoded train; every seed of the winner predicts and the outputs are
averaged. Out comes one row per input row: the ID columns, `prediction` in the target's own type
(int, bool, float or text — prep.json's `target_type`; regression values in the target's units)
and, for classification, `p_<class>` — each class's probability.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from alchemist.data.encode import FeatureEncoder
from alchemist.data.hygiene import apply
from alchemist.errors import UserError


def encode_new(table: pd.DataFrame, manifest: dict, what: str = "--data") -> tuple[pd.DataFrame, np.ndarray]:
    """(the table's features cleaned as prep cleaned train (data.hygiene), their encoding); a
    missing column or text in a numeric one is one line naming it."""
    report = manifest.get("hygiene")
    if report:
        missing = [c for c in report["kept"] if c not in table.columns]
        if missing:
            raise UserError(f"{what}: column(s) {', '.join(map(repr, missing[:5]))} (used in training) "
                            f"missing" + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
        table = apply(table, report, what)
    enc = FeatureEncoder.from_manifest(manifest)
    needed = enc.numeric + list(enc.categorical)
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise UserError(f"{what}: column '{missing[0]}' (used in training) is missing")
    for col in enc.numeric:
        bad = table[col][pd.to_numeric(table[col], errors="coerce").isna() & table[col].notna()]
        if len(bad):
            raise UserError(f"{what}: column '{col}' must hold numbers; it holds {bad.iloc[0]!r}")
    return table, enc.transform(table)


def encode_arrays(X: np.ndarray, manifest: dict, lengths: np.ndarray | None = None) -> np.ndarray:
    """Raw array rows (N, …) of an array source — token positions past `lengths` zeroed, as prep
    read them — normalised with the TRAIN statistics block by block (X may be memory-mapped):
    the encoded rows (N, F). The one encoding of arrays for `alchemist predict` and the pyfunc."""
    from alchemist.data.arrays import ArraySource, blocks, manifest_statistics, normalise

    width = len(manifest["features"])
    if X.size // max(len(X), 1) != width:
        raise UserError(f"model input: rows of shape {X.shape[1:]}; the model takes {width} values a row")
    src = ArraySource(X, np.zeros(len(X)), manifest.get("inputs", "table"), "", "", lengths)
    method, shift, scale = manifest_statistics(manifest)
    parts = [normalise(src.rows(np.arange(s, e)), shift, scale, method) for s, e in blocks(len(X), width)]
    return np.concatenate(parts) if parts else np.zeros((0, width))


def target_type(manifest: dict) -> str:
    """prep.json's `target_type`; for a prep written before it was recorded, read off the class
    names (all integers → int, True/False → bool, else text)."""
    if manifest.get("target_type"):
        return manifest["target_type"]
    names = manifest.get("classes") or []
    if names and all(c.lstrip("-").isdigit() for c in names):
        return "int"
    return "bool" if names and set(names) <= {"True", "False"} else "str"


def typed_labels(labels: list[str], target_type: str | None) -> list:
    """prep.json's class names (text) back in the target's own type."""
    if target_type == "int":
        return [int(float(c)) for c in labels]
    if target_type == "bool":
        return [c == "True" for c in labels]
    if target_type == "float":
        return [float(c) for c in labels]
    return list(labels)


def label_text(values: pd.Series, target_type: str | None) -> np.ndarray:
    """Labels as prep.json names classes (an int column read as 3.0 is class '3')."""
    if target_type == "int":
        return np.array([str(int(float(v))) if pd.notna(v) else "" for v in values])
    if target_type == "bool":
        return np.array([str(v.strip().lower() == "true" if isinstance(v, str) else bool(v))
                         if pd.notna(v) else "" for v in values])
    return values.astype(str).to_numpy()


class Predictor:
    """The winner's seeds as one predictor of raw rows (see the module docstring)."""

    def __init__(self, manifest: dict, trial_dirs: list[str | Path]):
        from alchemist.train.evaluate import WinnerModel

        self.manifest = manifest
        self.regression = manifest["task"] == "regression"
        self.model = WinnerModel(trial_dirs, regression=self.regression).eval()
        self.target_type = target_type(manifest)
        self.labels = typed_labels(manifest["classes"], self.target_type)

    def id_columns(self, table: pd.DataFrame) -> list[str]:
        """The table's columns prep left out — `data.columns.drop` (name your ID columns there) and
        those it dropped itself (IDs, constants, dates it did not expand): passed through."""
        dropped = set((self.manifest.get("hygiene") or {}).get("dropped") or {})
        dropped |= set(((self.manifest.get("config") or {}).get("columns") or {}).get("drop") or [])
        return [c for c in table.columns if c in dropped and c != self.manifest.get("target")]

    def outputs(self, encoded: np.ndarray, index=None) -> pd.DataFrame:
        """`prediction` (typed) and the class probabilities of encoded rows."""
        out = self.model.predict(torch.from_numpy(np.ascontiguousarray(encoded, dtype=np.float32)))
        frame = pd.DataFrame(index=index if index is not None else range(len(encoded)))
        if self.regression:
            frame["prediction"] = out[:, 0].numpy().astype(np.float64)
            return frame
        frame["prediction"] = pd.Series([self.labels[i] for i in out.argmax(1).tolist()], index=frame.index)
        for i, name in enumerate(self.manifest["classes"]):
            frame[f"p_{name}"] = out[:, i].numpy().astype(np.float64)
        return frame

    def frame(self, table: pd.DataFrame, what: str = "--data") -> pd.DataFrame:
        """Raw rows → the ID columns, `prediction`, `p_<class>`. For a model trained on an image
        folder, a column `image` of image files (paths or bytes, any size) → the same, `image` first."""
        if self.manifest.get("format") == "npz":
            if "image" not in table.columns or not self.manifest.get("image_shape"):
                raise UserError(f"{what}: this model was trained on "
                                + ("images: give a column 'image' of image files (paths or bytes)"
                                   if self.manifest.get("image_shape") else "arrays: give an array of rows"))
            images = table["image"].tolist()
            names = table[["image"]] if all(isinstance(i, str) for i in images) else table[[]]
            return pd.concat([names, self.outputs(self.images(images, what), table.index)], axis=1)
        _, encoded = encode_new(table, self.manifest, what)
        ids = self.id_columns(table)
        return pd.concat([table[ids], self.outputs(encoded, table.index)], axis=1)

    def images(self, images: list, what: str = "--data") -> np.ndarray:
        """Image files (paths or bytes) or arrays of any size, decoded as prep decoded the folder
        (resize, grey ↔ RGB) and normalised with the TRAIN statistics: encoded rows."""
        from alchemist.data.image_folder import decode

        c, h, w = self.manifest["image_shape"]
        raw = np.stack([decode(image, (h, w), c == 1, what) for image in images]) if images else \
            np.zeros((0, c, h, w), np.float32)
        return self.arrays(raw)

    def arrays(self, X: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """Raw array rows of an array source, encoded as prep encoded them (encode_arrays)."""
        return encode_arrays(X, self.manifest, lengths)

    def scores(self, out: pd.DataFrame, truth: pd.Series) -> dict[str, float]:
        """The selection metric (prep.json's) and accuracy — or rmse and r2 — of `out` on the true
        labels, by the pipeline's own definitions (alchemist.train.metrics.of_predictions)."""
        from alchemist.train.metrics import of_predictions

        metric = (self.manifest.get("metric") or {}).get("name")
        if self.regression:
            found = of_predictions("regression", metric, truth.to_numpy(np.float64),
                                   out["prediction"].to_numpy(np.float64))
            return {k: found[k] for k in ("rmse", "r2")}
        names = list(self.manifest["classes"])
        index = {c: i for i, c in enumerate(names)}
        text = label_text(truth, self.target_type)
        unknown = sorted({t for t in text if t not in index})
        if unknown:
            raise UserError(f"--data: target '{truth.name}' holds {unknown[0]!r}, not a class the model "
                            f"knows ({', '.join(names[:10])})")
        found = of_predictions(self.manifest["task"], metric, np.array([index[t] for t in text]),
                               out[[f"p_{c}" for c in names]].to_numpy())
        return {k: found[k] for k in dict.fromkeys([metric or "accuracy", "accuracy"]) if k in found}
