"""Prep stage (PB-1..PB-4): split sizes, stratification, train-only statistics, audit, encoding."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from alchemist.data.sources import load_source
from alchemist.data.prep import ROW_ID, TARGET, prepare, write


def digits_cfg(**over) -> dict:
    cfg = {"source": "sklearn:digits", "target": None, "test_file": None, "task": "auto", "seed": 0,
           "test_fraction": 0.2, "val_fraction": 0.2, "stratify": True, "normalise": "zscore",
           "missing": "impute", "rebalance": "none",
           "coarse": {"fraction": 0.5, "rows": None, "classes": None}}
    cfg.update(over)
    return cfg


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("prep")
    manifest = write(prepare(digits_cfg()), out)
    frames = {k: pd.read_parquet(out / f"{k}.parquet") for k in ("train", "val", "test", "train_coarse")}
    return manifest, frames


def test_split_sizes_are_8_2_after_test_holdout(digits):
    manifest, frames = digits
    n = 1797
    n_test = len(frames["test"])
    assert abs(n_test - 0.2 * n) <= 1
    rest = n - n_test
    assert abs(len(frames["val"]) - 0.2 * rest) <= 1
    assert len(frames["train"]) + len(frames["val"]) == rest
    assert manifest["splits"]["train"]["rows"] == len(frames["train"])


def test_splits_are_stratified_within_one_row_per_class(digits):
    _, frames = digits
    y_all = load_source("sklearn:digits", None).frame["target"]
    total = y_all.value_counts()
    n = len(y_all)
    for name, frame in frames.items():
        if name == "train_coarse":
            continue
        counts = frame[TARGET].value_counts()
        for cls, count in total.items():
            assert abs(counts.get(cls, 0) - count * len(frame) / n) <= 1.0 + 1e-9, (name, cls)


def test_train_is_standardised_and_stats_match_recomputation(digits):
    manifest, frames = digits
    features = manifest["features"]
    train = frames["train"][features]
    stats = manifest["normalisation"]["columns"]
    varying = [c for c in features if stats[c]["std"] != 1.0 or train[c].std() > 0]
    assert np.abs(train[varying].mean()).max() < 1e-5
    nonconstant = [c for c in features if train[c].std(ddof=0) > 0]
    assert np.allclose(train[nonconstant].std(ddof=0), 1.0, atol=1e-4)
    # recompute from the raw source rows of the train split alone
    raw = load_source("sklearn:digits", None).frame
    raw_train = raw.iloc[frames["train"][ROW_ID].to_numpy()]
    for col in features:
        assert stats[col]["mean"] == pytest.approx(raw_train[col].mean(), rel=1e-6, abs=1e-9)
        sd = raw_train[col].std(ddof=0)
        assert stats[col]["std"] == pytest.approx(sd if sd > 1e-12 else 1.0, rel=1e-5)
    # val/test are transformed with the SAME (train) statistics
    for split in ("val", "test"):
        raw_rows = raw.iloc[frames[split][ROW_ID].to_numpy()]
        for col in features[20:24]:
            expected = (raw_rows[col] - stats[col]["mean"]) / stats[col]["std"]
            assert np.allclose(frames[split][col], expected, atol=1e-5)
    assert manifest["audit"]["stats_match_train"] and manifest["audit"]["disjoint_splits"]


def test_no_row_in_two_splits_and_coarse_within_train(digits):
    _, frames = digits
    ids = {k: set(f[ROW_ID]) for k, f in frames.items()}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    assert ids["train_coarse"] <= ids["train"]
    assert abs(len(ids["train_coarse"]) - 0.5 * len(ids["train"])) <= 1


def test_manifest_records_hashes_image_shape_and_counts(digits):
    manifest, _ = digits
    assert manifest["image_shape"] == [1, 8, 8] and manifest["task"] == "multiclass"
    assert manifest["n_classes"] == 10 and len(manifest["source"]["sha256"]) == 64
    for split in manifest["splits"].values():
        assert len(split["row_ids_sha256"]) == 64 and len(split["file_sha256"]) == 64
        assert sum(split["class_counts"].values()) == split["rows"]


def test_same_seed_same_bytes_other_seed_other_split(tmp_path):
    a = write(prepare(digits_cfg()), tmp_path / "a")
    b = write(prepare(digits_cfg()), tmp_path / "b")
    c = write(prepare(digits_cfg(seed=1)), tmp_path / "c")
    assert a["splits"]["train"]["row_ids_sha256"] == b["splits"]["train"]["row_ids_sha256"]
    assert (tmp_path / "a/train.parquet").read_bytes() == (tmp_path / "b/train.parquet").read_bytes()
    assert a["splits"]["train"]["row_ids_sha256"] != c["splits"]["train"]["row_ids_sha256"]


def test_other_ratios_and_regression(tmp_path):
    m = prepare(digits_cfg(val_fraction=0.3)).manifest["splits"]
    assert abs(m["val"]["rows"] - 0.3 * (m["train"]["rows"] + m["val"]["rows"])) <= 1
    regression = prepare(digits_cfg(source="sklearn:diabetes"))
    reg = regression.manifest
    assert reg["task"] == "regression" and reg["n_classes"] == 1 and reg["classes"] == []
    train_y = regression.tables["train"].column(TARGET).to_numpy()
    val_y = regression.tables["val"].column(TARGET).to_numpy().astype(float)
    assert reg["baseline"]["value"] == pytest.approx(train_y.mean(), rel=1e-5)     # guessing the mean
    assert reg["baseline"]["val_rmse"] == pytest.approx(np.sqrt(((val_y - train_y.mean()) ** 2).mean()), rel=1e-5)
    binary = prepare(digits_cfg(source="sklearn:breast_cancer", normalise="minmax")).manifest
    assert binary["task"] == "binary"
    cols = binary["normalisation"]["columns"]
    assert all(v["range"] > 0 for v in cols.values())


def test_categorical_missing_and_constant_columns(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame({"num": rng.normal(5, 2, n), "const": 3.0,
                       "colour": rng.choice(["red", "green", "blue"], n),
                       "label": rng.choice(["a", "b"], n)})
    df.loc[::17, "num"] = np.nan
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    prepared = prepare(digits_cfg(source=str(path), target="label", coarse={"rows": 50}))
    man = prepared.manifest
    assert man["task"] == "binary"
    assert "num__missing" in man["features"] and "colour=red" in man["features"]
    train = prepared.tables["train"].to_pandas()
    assert np.isfinite(train["num"]).all()
    assert (train["const"] == 0).all()            # constant column: no division by zero
    assert set(train["colour=red"].unique()) <= {0.0, 1.0}
    assert man["missing"]["medians"]["num"] == pytest.approx(
        df.iloc[train[ROW_ID]]["num"].median())     # median from TRAIN rows only
    assert prepared.tables["train_coarse"].num_rows == 50
    gaps = man["hygiene"]["imputed"]["num"]           # prep says what it filled, where and with what
    assert sum(gaps.values()) == df["num"].isna().sum() and gaps["train"] > 0
    line = next(w for w in man["hygiene"]["warnings"] if "'num' is missing" in w)
    assert f"{gaps['train']} in train" in line and "filled with the train median" in line
    assert f"{man['missing']['medians']['num']:.6g}" in line and "'num__missing'" in line


def test_unseen_category_in_test_file_is_all_zero(tmp_path):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x": rng.normal(size=200), "cat": rng.choice(["u", "v"], 200),
                       "y": rng.choice([0, 1, 2], 200)})
    test = df.head(20).copy()
    test["cat"] = "never-seen"
    df.to_parquet(tmp_path / "d.parquet")
    test.to_csv(tmp_path / "test.csv", index=False)
    prepared = prepare(digits_cfg(source=str(tmp_path / "d.parquet"), target="y",
                                  test_file=str(tmp_path / "test.csv")))
    t = prepared.tables["test"].to_pandas()
    assert len(t) == 20 and (t[["cat=u", "cat=v"]].sum(axis=1) == 0).all()
    assert t[ROW_ID].min() >= 200                 # test-file rows get ids after the source's


def test_coarse_class_subset_and_rebalance_plan():
    prepared = prepare(digits_cfg(coarse={"fraction": 1.0, "classes": [0, 1]},
                                  rebalance="oversample"))
    y = prepared.tables["train_coarse"].column(TARGET).to_numpy()
    assert set(np.unique(y)) == {0, 1}
    weights = prepared.manifest["rebalance"]["class_weights"]
    assert prepared.manifest["rebalance"]["method"] == "oversample" and len(weights) == 10
    counts = np.bincount(prepared.tables["train"].column(TARGET).to_numpy())
    assert np.argmax(weights) == np.argmin(counts)   # rarest class weighted most (PB-4)
    assert json.dumps(prepared.manifest["rebalance"])


def test_gaps_only_in_the_test_file_are_filled_but_never_shape_the_features(tmp_path):
    """Which columns get a `__missing` indicator is learned from TRAIN alone (PB-2)."""
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"x": rng.normal(size=200), "z": rng.normal(3, 1, 200), "y": rng.choice([0, 1], 200)})
    test = df.head(20).copy()
    test.loc[::3, "z"] = np.nan
    df.to_parquet(tmp_path / "d.parquet")
    test.to_csv(tmp_path / "test.csv", index=False)
    prepared = prepare(digits_cfg(source=str(tmp_path / "d.parquet"), target="y",
                                  test_file=str(tmp_path / "test.csv")))
    man = prepared.manifest
    assert "z__missing" not in man["features"] and man["missing"]["medians"] == {}
    train_rows = df.iloc[prepared.tables["train"].to_pandas()[ROW_ID]]
    assert man["missing"]["fill"]["z"] == pytest.approx(train_rows["z"].median())
    t = prepared.tables["test"].to_pandas()
    assert np.isfinite(t["z"]).all()               # filled with the train median, then scaled


def test_synthetic_shapes_are_deterministic_and_balanced():
    from alchemist.data import synthetic
    from alchemist.errors import UserError

    a, shape = synthetic.shapes(80)
    b, _ = synthetic.shapes(80)
    assert shape == [3, 32, 32] and a.shape == (80, 3 * 32 * 32 + 1) and a.equals(b)
    assert a["target"].value_counts().tolist() == [20] * 4
    assert 0 <= a.drop(columns="target").to_numpy().min() and a.drop(columns="target").to_numpy().max() <= 1
    assert load_source("synthetic:shapes:80", None).sha256 == load_source("synthetic:shapes:80", None).sha256
    for bad in ("synthetic:circles", "synthetic:shapes:ten", "synthetic:shapes:5"):
        with pytest.raises(UserError, match="data.source"):
            load_source(bad, None)
