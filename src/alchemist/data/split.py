"""Task detection, the test hold-out, the train/val split and the coarse subsample (PB-1, PB-3).

Everything here works on row positions and labels only, so no statistic of any split is
touched. Splits are stratified for classification and deterministic given `data.seed`.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from alchemist.errors import UserError

MAX_CLASSES_AUTO = 20  # integer targets with at most this many values are treated as classes


def detect_task(y: pd.Series, requested: str, column: str) -> str:
    """`auto` → regression / binary / multiclass from the target's values (PB-7)."""
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    values = y.dropna()
    n_unique = values.nunique()
    if numeric and len(values) >= 50 and n_unique == len(values) and np.all(np.mod(values, 1) == 0) \
            and values.max() - values.min() == n_unique - 1:
        raise UserError(f"data.target: column '{column}' looks like a row ID ({n_unique} distinct "
                        f"consecutive integers, {int(values.min())}..{int(values.max())}); set "
                        "data.target to the column to predict")
    constant = UserError(f"data.target: column '{column}' is constant "
                         f"({values.iloc[0] if len(values) else 'no values'}); nothing to learn")
    if requested == "regression":
        if not numeric:
            raise UserError(f"data.target: column '{column}' is not numeric, "
                            "but data.task is 'regression'")
        if n_unique < 2:
            raise constant
        return "regression"
    if requested == "auto":
        integral = numeric and np.all(np.isfinite(values)) and np.all(np.mod(values, 1) == 0)
        if numeric and not (integral and n_unique <= MAX_CLASSES_AUTO):
            if n_unique < 2:
                raise constant
            return "regression"
        requested = "binary" if n_unique == 2 else "multiclass"
    if n_unique < 2:
        raise UserError(f"data.target: column '{column}' has a single class "
                        f"({values.iloc[0] if len(values) else 'no values'}); nothing to learn")
    if requested == "binary" and n_unique != 2:
        raise UserError(f"data.task: 'binary' but column '{column}' has {n_unique} classes")
    return requested


def check_target(y: pd.Series, task: str, column: str) -> None:
    """Refuses (UserError) a target column with missing values, or inf for a regression; else returns None."""
    if y.isna().any():
        raise UserError(f"data.target: column '{column}' has {int(y.isna().sum())} missing "
                        "value(s); drop those rows first")
    if task == "regression" and not np.all(np.isfinite(y.to_numpy(dtype=float))):
        raise UserError(f"data.target: column '{column}' has non-finite values (inf)")


def planned_sizes(n: int, test_fraction: float | None, val_fraction: float) -> tuple[int, int, int]:
    """(train, val, test) row counts as scikit-learn's splitter computes them (ceil for the held-out part)."""
    n_test = math.ceil(n * test_fraction) if test_fraction else 0
    n_val = math.ceil((n - n_test) * val_fraction)
    return n - n_test - n_val, n_val, n_test


def _stratified(idx: np.ndarray, labels, size: float, seed: int, what: str):
    try:
        return train_test_split(idx, test_size=size, random_state=seed, shuffle=True,
                                stratify=labels)
    except ValueError as err:
        raise UserError(f"data: cannot split off the {what}: {err}") from None


def split_rows(y: pd.Series, *, task: str, test_fraction: float | None, val_fraction: float,
               seed: int, stratify: bool, source: str) -> dict[str, np.ndarray]:
    """Positions of the rows in test (unless a test file is given), val and train."""
    n = len(y)
    n_train, n_val, n_test = planned_sizes(n, test_fraction, val_fraction)
    n_classes = y.nunique() if task != "regression" else 1
    need = n_classes if (stratify and task != "regression") else 1
    if min(n_val, n_train) < max(need, 1) or (test_fraction and n_test < need) or n_train < 2:
        raise UserError(f"data.source: too few rows in {source} ({n}) for the split "
                        f"(train {n_train}, val {n_val}, test {n_test}; each needs ≥ {max(need, 2)})")
    if stratify and task != "regression":
        counts = y.value_counts()
        rare = counts[counts < 3]
        if len(rare):
            raise UserError(f"data.target: class '{rare.index[0]}' has only {int(rare.iloc[0])} "
                            "row(s); a stratified train/val/test split needs at least 3 per class")
    strat = (lambda idx: y.to_numpy()[idx]) if stratify and task != "regression" else (lambda idx: None)
    idx = np.arange(n)
    out = {}
    if test_fraction:
        idx, out["test"] = _stratified(idx, strat(idx), n_test, seed, "test set")
    out["train"], out["val"] = _stratified(idx, strat(idx), n_val, seed + 1, "validation set")
    return {k: np.sort(v) for k, v in out.items()}


def coarse_subsample(y_train: pd.Series, *, fraction: float | None, rows: int | None,
                     classes: list | None, task: str, seed: int) -> np.ndarray:
    """Positions (within train) of the coarse-search subsample (PB-3): classes, then rows."""
    idx = np.arange(len(y_train))
    if classes:
        labels = {str(c) for c in classes}
        present = {str(v) for v in y_train.unique()}
        missing = sorted(labels - present)
        if missing:
            raise UserError(f"data.coarse.classes: class(es) {', '.join(missing)} not in the target")
        idx = idx[y_train.astype(str).isin(labels).to_numpy()]
    target = rows if rows else round(len(idx) * (fraction if fraction is not None else 1.0))
    if target >= len(idx):
        return idx
    if target < 2:
        raise UserError(f"data.coarse: subsample of {target} row(s) is too small")
    labels = y_train.to_numpy()[idx] if task != "regression" else None
    if labels is not None and target < len(np.unique(labels)):
        raise UserError(f"data.coarse: {target} rows cannot hold all {len(np.unique(labels))} classes")
    keep, _ = train_test_split(idx, train_size=target, random_state=seed + 2, stratify=labels)
    return np.sort(keep)


def choose_metric(requested: str, task: str, y_train: np.ndarray, n_classes: int) -> dict:
    """The selection metric and why (`data.metric`): regression is ranked by rmse; `auto` picks
    balanced accuracy when the smallest class has under half its fair share (1/C) of train —
    accuracy would reward always predicting the majority — else accuracy."""
    if task == "regression":
        if requested not in ("auto", "rmse"):
            raise UserError(f"data.metric: '{requested}' ranks classes; a regression task is "
                            "ranked by rmse (or auto)")
        return {"name": "rmse", "reason": "regression"}
    if requested == "rmse":
        raise UserError(f"data.metric: 'rmse' ranks regression; this is a {task} task")
    if requested != "auto":
        return {"name": requested, "reason": "data.metric"}
    counts = np.bincount(np.asarray(y_train, dtype=np.int64), minlength=max(n_classes, 2))
    smallest = counts.min() / max(counts.sum(), 1)
    fair = 1 / len(counts)
    if smallest < 0.5 * fair:
        return {"name": "balanced_accuracy",
                "reason": f"auto: the smallest class is {smallest:.1%} of train, under half its fair "
                          f"share ({fair:.1%}): accuracy would reward predicting the majority"}
    return {"name": "accuracy", "reason": f"auto: classes balanced enough (smallest {smallest:.1%} of "
                                          f"train, fair share {fair:.1%})"}


BALANCED = ("balanced_accuracy", "macro_f1")     # selection metrics that weigh every class alike


def rebalance_plan(y: np.ndarray, task: str, n_classes: int, method: str, metric: str | None = None) -> dict:
    """PB-4: inverse-frequency class weights, used as loss weights or oversampling weights.
    `auto`: class weights when trials are ranked by a balanced metric (training then aims at
    what is measured), else none; the plan says why."""
    if method == "auto":
        if task != "regression" and metric in BALANCED:
            method, reason = "class_weight", f"auto: trials are ranked by {metric}, so training weighs classes alike"
        else:
            method, reason = "none", "auto: trials are ranked by a metric that does not weigh classes alike"
    else:
        reason = "data.rebalance"
    if task == "regression" or method == "none":
        return {"method": "none", "class_weights": None, "reason": reason}
    counts = np.bincount(y, minlength=n_classes).astype(float)
    weights = len(y) / (n_classes * np.maximum(counts, 1))
    return {"method": method, "class_weights": [round(float(w), 6) for w in weights], "reason": reason}
