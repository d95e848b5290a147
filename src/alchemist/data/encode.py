"""Turn raw feature columns into one float32 matrix, learning everything from TRAIN only.

- missing values (NaN/inf): `fail` names the column; `impute` uses the train median and adds a
  `<column>__missing` indicator;
- string/categorical columns: one-hot with the categories seen in train (unseen → all zeros);
- normalisation (PB-2): z-score (default), min-max or none, with train statistics; a constant
  column gets scale 1 so it never divides by zero. Indicators and one-hot columns stay 0/1.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from alchemist.errors import UserError

MISSING_CATEGORY = "__missing__"


def is_categorical(series: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


@dataclass
class FeatureEncoder:
    numeric: list[str]
    categorical: dict[str, list[str]] = field(default_factory=dict)
    medians: dict[str, float] = field(default_factory=dict)   # columns with an indicator
    method: str = "zscore"
    shift: np.ndarray | None = None   # mean (zscore) or min (minmax), per numeric column
    scale: np.ndarray | None = None   # std (zscore) or max-min (minmax)

    # ------------------------------------------------------------------ fit (train only)
    @classmethod
    def fit(cls, train: pd.DataFrame, others: dict[str, pd.DataFrame], *, method: str,
            missing: str) -> "FeatureEncoder":
        numeric = [c for c in train.columns if not is_categorical(train[c])]
        categorical_cols = [c for c in train.columns if c not in numeric]
        splits = {"train": train, **others}
        for name, frame in splits.items():
            for col in categorical_cols:
                if name != "train" and col in frame and not is_categorical(frame[col]):
                    frame[col] = frame[col].astype(str)
        bad = _non_finite_columns(splits, numeric, categorical_cols)
        if bad and missing == "fail":
            col, split, count = bad[0]
            raise UserError(f"data.missing=fail: column '{col}' has {count} missing or "
                            f"non-finite value(s) in the {split} split "
                            "(set data.missing: impute to fill them with the train median)")
        enc = cls(numeric=numeric, method=method)
        for col in categorical_cols:
            values = train[col].astype("string").fillna(MISSING_CATEGORY)
            enc.categorical[col] = sorted(values.unique().tolist())
        for col in sorted({c for c, _, _ in bad if c in numeric}, key=numeric.index):
            column = train[col].to_numpy(dtype=np.float64)
            finite = column[np.isfinite(column)]
            enc.medians[col] = float(np.median(finite)) if len(finite) else 0.0
        raw = enc._numeric_matrix(train)
        enc.shift, enc.scale = _statistics(raw, method)
        return enc

    # ------------------------------------------------------------------ apply (any split)
    @property
    def feature_names(self) -> list[str]:
        names = list(self.numeric) + [f"{c}__missing" for c in self.medians]
        for col, cats in self.categorical.items():
            names += [f"{col}={cat}" for cat in cats]
        return names

    def _numeric_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        matrix = frame[self.numeric].to_numpy(dtype=np.float32, copy=True)
        for col, median in self.medians.items():
            j = self.numeric.index(col)
            bad = ~np.isfinite(matrix[:, j])
            matrix[bad, j] = median
        return matrix

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        parts = [self._numeric_matrix(frame)]
        if self.method != "none" and self.numeric:
            parts[0] -= self.shift.astype(np.float32)
            parts[0] /= self.scale.astype(np.float32)
        if self.medians:
            parts.append(np.stack([~np.isfinite(frame[c].to_numpy(dtype=np.float64))
                                   for c in self.medians], axis=1).astype(np.float32))
        for col, cats in self.categorical.items():
            values = frame[col].astype("string").fillna(MISSING_CATEGORY).to_numpy()
            parts.append((values[:, None] == np.asarray(cats, dtype=object)[None, :]).astype(np.float32))
        return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]

    def manifest(self) -> dict:
        columns = {}
        if self.method != "none":
            keys = ("mean", "std") if self.method == "zscore" else ("min", "range")
            for j, col in enumerate(self.numeric):
                columns[col] = {keys[0]: float(self.shift[j]), keys[1]: float(self.scale[j])}
        return {"method": self.method, "columns": columns}


def _statistics(raw: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-column shift and scale from the TRAIN matrix, accumulated in float64 (PB-2)."""
    if method == "zscore":
        shift = raw.mean(axis=0, dtype=np.float64)
        scale = raw.std(axis=0, dtype=np.float64)
    elif method == "minmax":
        shift = raw.min(axis=0).astype(np.float64)
        scale = raw.max(axis=0).astype(np.float64) - shift
    else:
        return np.zeros(raw.shape[1]), np.ones(raw.shape[1])
    scale = np.where(scale > 1e-12, scale, 1.0)   # constant column: no division by zero
    return shift, scale


def _non_finite_columns(splits: dict[str, pd.DataFrame], numeric: list[str],
                        categorical: list[str]) -> list[tuple[str, str, int]]:
    found = []
    for name, frame in splits.items():
        if numeric:
            values = frame[numeric].to_numpy(dtype=np.float64)
            counts = (~np.isfinite(values)).sum(axis=0)
            found += [(col, name, int(n)) for col, n in zip(numeric, counts) if n]
        found += [(col, name, int(frame[col].isna().sum())) for col in categorical
                  if frame[col].isna().any()]
    return found
