"""Turn raw feature columns into one float32 matrix, learning everything from TRAIN only.

- missing values (NaN/inf): `fail` names the column; `impute` fills any of them with the column's
  train median and adds a `<column>__missing` indicator for each column with gaps IN TRAIN (gaps
  found only in val/test are filled but never shape the feature set);
- string/categorical columns: one-hot with the categories seen in train (unseen → all zeros);
  with `max_categories` / `min_frequency` the rarest train categories share one `<col>=__other__`
  column (as scikit-learn's OneHotEncoder decides them; unseen values go there too);
- normalisation (PB-2): z-score (default), min-max or none, with train statistics; a constant
  column gets scale 1 so it never divides by zero. Indicators and one-hot columns stay 0/1.
  Images (an image shape, every column a pixel) are normalised per CHANNEL: one shift and scale
  from all of a channel's train pixels, as vision models expect (`groups`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from alchemist.errors import UserError

MISSING_CATEGORY = "__missing__"
OTHER = "__other__"


def pixel_columns(shape: list[int]) -> list[str]:
    """Column names of an image's pixels, channel-major (C, H, W): `c{channel}_{row}_{col}` —
    the one naming every image source uses (generated, callable, arrays, folders)."""
    c, h, w = shape
    return [f"c{k}_{i}_{j}" for k in range(c) for i in range(h) for j in range(w)]


def token_columns(length: int) -> list[str]:
    """Column names of a token-id sequence: `t00`, `t01`, … (position order)."""
    return [f"t{i:02d}" for i in range(length)]


def is_categorical(series: pd.Series) -> bool:
    """Whether a column is one-hot encoded as categories: any non-numeric dtype, and booleans."""
    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


@dataclass
class FeatureEncoder:
    numeric: list[str]
    categorical: dict[str, list[str]] = field(default_factory=dict)
    medians: dict[str, float] = field(default_factory=dict)   # columns with an indicator (train gaps)
    fill: dict[str, float] = field(default_factory=dict)      # train median of every numeric column
    method: str = "zscore"
    shift: np.ndarray | None = None   # mean (zscore) or min (minmax), per numeric column
    scale: np.ndarray | None = None   # std (zscore) or max-min (minmax)
    capped: dict[str, int] = field(default_factory=dict)      # rare categories put in OTHER
    groups: list[list[int]] | None = None    # numeric column indices sharing statistics (channels)
    gaps: dict[str, dict[str, int]] = field(default_factory=dict)   # column -> split -> values missing

    # ------------------------------------------------------------------ fit (train only)
    @classmethod
    def fit(cls, train: pd.DataFrame, others: dict[str, pd.DataFrame], *, method: str,
            missing: str, max_categories: int | None = None,
            min_frequency: float | None = None,
            image_shape: list[int] | None = None) -> "FeatureEncoder":
        """The encoder learnt from `train` alone (columns, fill values, categories, shift and scale); `others`
        only have their gaps reported. A UserError with `missing="fail"` when any split has a gap."""
        numeric = [c for c in train.columns if not is_categorical(train[c])]
        categorical_cols = [c for c in train.columns if c not in numeric]
        splits = {"train": train, **others}
        bad = _non_finite_columns(splits, numeric, categorical_cols)
        if bad and missing == "fail":
            col, split, count = bad[0]
            raise UserError(f"data.missing=fail: column '{col}' has {count} missing or "
                            f"non-finite value(s) in the {split} split "
                            "(set data.missing: impute to fill them with the train median)")
        enc = cls(numeric=numeric, method=method)
        for col, split, count in bad:
            enc.gaps.setdefault(col, {})[split] = count
        if image_shape and not categorical_cols and len(numeric) == int(np.prod(image_shape)):
            per = len(numeric) // image_shape[0]
            enc.groups = [list(range(c * per, (c + 1) * per)) for c in range(image_shape[0])]
        for col in categorical_cols:
            values = train[col].astype("string").fillna(MISSING_CATEGORY)
            cats = sorted(values.unique().tolist())
            rare = _rare_categories(values, max_categories, min_frequency)
            if rare:
                cats = sorted(set(cats) - rare) + [OTHER]
                enc.capped[col] = len(rare)
            enc.categorical[col] = cats
        if missing == "impute":
            for col in numeric:
                column = train[col].to_numpy(dtype=np.float64)
                finite = column[np.isfinite(column)]
                enc.fill[col] = float(np.median(finite)) if len(finite) else 0.0
        for col in sorted({c for c, split, _ in bad if split == "train" and c in numeric}, key=numeric.index):
            enc.medians[col] = enc.fill[col]
        enc.shift, enc.scale = _statistics(enc, train, method)
        return enc

    def imputation_report(self) -> list[str]:
        """What imputation did, one line a column (prep prints them, prep.json keeps them)."""
        lines = []
        for col, counts in self.gaps.items():
            where = ", ".join(f"{n} in {split}" for split, n in counts.items())
            if col in self.fill:
                extra = f", plus an indicator column '{col}__missing'" if col in self.medians else ""
                lines.append(f"data: column '{col}' is missing {where}: filled with the train median "
                             f"{self.fill[col]:.6g}{extra}")
            else:
                lines.append(f"data: column '{col}' is missing {where}: a category of its own "
                             f"('{MISSING_CATEGORY}')")
        return lines

    # ------------------------------------------------------------------ apply (any split)
    @property
    def feature_names(self) -> list[str]:
        """Encoded column names in matrix order: numeric, `<col>__missing` indicators, `<col>=<category>`."""
        names = list(self.numeric) + [f"{c}__missing" for c in self.medians]
        for col, cats in self.categorical.items():
            names += [f"{col}={cat}" for cat in cats]
        return names

    def _numeric_column(self, frame: pd.DataFrame, col: str) -> np.ndarray:
        column = frame[col].to_numpy(dtype=np.float64)
        if col in self.fill and not np.isfinite(column).all():
            column = np.where(np.isfinite(column), column, self.fill[col])
        return column

    def _numeric_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        matrix = np.empty((len(frame), len(self.numeric)), dtype=np.float32, order="F")
        for j, col in enumerate(self.numeric):
            matrix[:, j] = self._numeric_column(frame, col)
        return matrix

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Encoded float32 matrix in column-major order (each column contiguous)."""
        out = np.empty((len(frame), len(self.feature_names)), dtype=np.float32, order="F")
        for j, col in enumerate(self.numeric):   # column by column: no full float64 copy
            column = self._numeric_column(frame, col)
            if self.method != "none":
                column = (column - self.shift[j]) / self.scale[j]
            out[:, j] = column
        j = len(self.numeric)
        for col in self.medians:
            out[:, j] = ~np.isfinite(frame[col].to_numpy(dtype=np.float64))
            j += 1
        for col, cats in self.categorical.items():
            values = frame[col].astype("string").fillna(MISSING_CATEGORY).to_numpy()
            for cat in cats:
                out[:, j] = values == cat if cat != OTHER else ~np.isin(values, cats)
                j += 1
        return out

    @classmethod
    def from_manifest(cls, manifest: dict) -> "FeatureEncoder":
        """The encoder a prep run fitted, rebuilt from its prep.json (to encode new data)."""
        norm, numeric = manifest["normalisation"], manifest["encoding"]["numeric"]
        enc = cls(numeric=list(numeric), categorical=dict(manifest["encoding"]["categorical"]),
                  medians=dict(manifest["missing"]["medians"]), method=norm["method"],
                  fill=dict(manifest["missing"].get("fill", manifest["missing"]["medians"])))
        keys = {"zscore": ("mean", "std"), "minmax": ("min", "range")}.get(norm["method"])
        if keys:
            enc.shift = np.array([norm["columns"][c][keys[0]] for c in numeric], dtype=np.float64)
            enc.scale = np.array([norm["columns"][c][keys[1]] for c in numeric], dtype=np.float64)
        return enc

    def manifest(self) -> dict:
        """The normalisation record for prep.json: method, each numeric column's mean/std or min/range,
        and whether statistics are per channel."""
        columns = {}
        if self.method != "none":
            keys = ("mean", "std") if self.method == "zscore" else ("min", "range")
            for j, col in enumerate(self.numeric):
                columns[col] = {keys[0]: float(self.shift[j]), keys[1]: float(self.scale[j])}
        return {"method": self.method, "columns": columns, "per_channel": self.groups is not None}


def _rare_categories(values: pd.Series, max_categories: int | None,
                     min_frequency: float | None) -> set[str]:
    """The train categories scikit-learn's OneHotEncoder would call infrequent."""
    if not max_categories and not min_frequency:
        return set()
    from sklearn.preprocessing import OneHotEncoder

    if min_frequency is not None and min_frequency >= 1:
        min_frequency = int(min_frequency)
    ohe = OneHotEncoder(max_categories=max_categories, min_frequency=min_frequency or None,
                        handle_unknown="infrequent_if_exist")
    ohe.fit(values.to_numpy(dtype=object).reshape(-1, 1))
    rare = ohe.infrequent_categories_[0]
    return set() if rare is None else set(map(str, rare))


def _statistics(enc: FeatureEncoder, train: pd.DataFrame, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-column shift and scale from the TRAIN split only, in float64 (PB-2)."""
    n = len(enc.numeric)
    if method == "none":
        return np.zeros(n), np.ones(n)
    shift, scale = np.empty(n), np.empty(n)
    for group in enc.groups or [[j] for j in range(n)]:
        values = np.concatenate([enc._numeric_column(train, enc.numeric[j]) for j in group])
        if method == "zscore":
            shift[group], scale[group] = values.mean(), values.std()
        else:
            shift[group] = values.min()
            scale[group] = values.max() - values.min()
    scale = np.where(scale > 1e-12, scale, 1.0)   # constant column: no division by zero
    return shift, scale


def _non_finite_columns(splits: dict[str, pd.DataFrame], numeric: list[str],
                        categorical: list[str]) -> list[tuple[str, str, int]]:
    found = []
    for name, frame in splits.items():
        if numeric:                            # numeric columns (by dtype): one matrix
            counts = (~np.isfinite(frame[numeric].to_numpy(dtype=np.float64, na_value=np.nan))).sum(0)
            found += [(numeric[j], name, int(counts[j])) for j in np.flatnonzero(counts)]
        found += [(col, name, int(frame[col].isna().sum())) for col in categorical
                  if frame[col].isna().any()]
    return found
