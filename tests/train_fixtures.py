"""Prepared-data fixtures for the engine tests, in the exact `results/data/` format of
docs/architecture.md (built here so the engine tests do not depend on the prep module)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_diabetes, load_digits
from sklearn.model_selection import train_test_split


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_prepared(out: Path, X: np.ndarray, y: np.ndarray, task: str, image_shape=None,
                   rebalance=None, seed: int = 0) -> Path:
    """Stratified test hold-out 20%, then train:val 8:2 (the config defaults, PB-1), z-scored with train statistics (PB-1, PB-2)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ids = np.arange(len(y))
    strat = None if task == "regression" else y
    rest, test = train_test_split(ids, test_size=0.2, random_state=seed, stratify=strat)
    train, val = train_test_split(rest, test_size=0.2, random_state=seed,
                                  stratify=None if strat is None else y[rest])
    mean, std = X[train].mean(0), X[train].std(0)
    std[std == 0] = 1.0
    features = [f"f{i}" for i in range(X.shape[1])]
    classes = [] if task == "regression" else [str(c) for c in np.unique(y)]
    splits = {}
    for name, rows in {"train": train, "val": val, "test": test, "train_coarse": train[: len(train) // 2]}.items():
        frame = pd.DataFrame(((X[rows] - mean) / std).astype("float32"), columns=features)
        frame.insert(0, "_row_id", rows.astype("int64"))
        frame["_y"] = y[rows].astype("float32" if task == "regression" else "int64")
        frame.to_parquet(out / f"{name}.parquet", index=False)
        counts = {} if task == "regression" else {c: int((y[rows] == int(c)).sum()) for c in classes}
        splits[name] = {"rows": len(rows), "class_counts": counts, "file_sha256": _sha(out / f"{name}.parquet"),
                        "row_ids_sha256": hashlib.sha256(np.sort(rows).tobytes()).hexdigest()}
    manifest = {
        "task": task, "n_classes": 1 if task == "regression" else len(classes), "classes": classes,
        "features": features, "image_shape": image_shape, "splits": splits,
        "normalisation": {"method": "zscore", "columns": {f: {"mean": float(m), "std": float(s)}
                                                          for f, m, s in zip(features, mean, std)}},
        "source": {"name": "fixture", "sha256": "", "rows": len(y)},
        "rebalance": rebalance or {"method": "none", "class_weights": None},
        "audit": {"disjoint_splits": True, "stats_match_train": True},
    }
    (out / "prep.json").write_text(json.dumps(manifest, indent=2))
    return out


def digits(out: Path, **kw) -> Path:
    d = load_digits()
    return write_prepared(out, d.data.astype("float64"), d.target, "multiclass", image_shape=[1, 8, 8], **kw)


def digits_binary(out: Path, **kw) -> Path:
    """Digit 0 against the rest: an imbalanced binary task (about 1:9)."""
    d = load_digits()
    return write_prepared(out, d.data.astype("float64"), (d.target == 0).astype("int64"), "binary", **kw)


def diabetes(out: Path) -> Path:
    d = load_diabetes()
    y = (d.target - d.target.mean()) / d.target.std()
    return write_prepared(out, d.data, y, "regression")


# -- shared by the engine tests ------------------------------------------------------------------
import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory) -> Path:
    return digits(tmp_path_factory.mktemp("digits"))


def trainer(data_dir: Path, trials: list[dict], split: str = "train"):
    """A PackTrainer on prepared data (CPU, one thread), trials completed with the defaults."""
    from alchemist.train.data import load_split, read_manifest
    from alchemist.train.engine import PackTrainer
    from alchemist.trial import complete_trials

    torch.set_num_threads(1)
    prep = read_manifest(data_dir)
    return PackTrainer(complete_trials(trials), prep, load_split(data_dir, split, prep),
                       load_split(data_dir, "val", prep), "cpu")
