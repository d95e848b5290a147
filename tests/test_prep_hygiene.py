"""Prep's column hygiene on a realistic customer table (alchemist.data.hygiene): an ID column
and a date column are warned about and dropped (or the date expanded), an empty column dropped,
a high-cardinality category capped as scikit-learn's OneHotEncoder does, ±inf counted; the
inputs are counted; `alchemist predict` applies the same to new rows."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from alchemist.config import validate
from alchemist.data.prep import prepare


@pytest.fixture(scope="module")
def customers(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 3000
    age = rng.integers(18, 80, n)
    frame = pd.DataFrame({
        "customer_id": [f"C{i:07d}" for i in rng.permutation(n)],
        "signup_date": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, n), "D"),
        "age": age, "city": rng.choice([f"city{i:03d}" for i in range(400)], n),
        "empty": np.nan, "income": rng.normal(50, 10, n)})
    frame["signup_date"] = frame["signup_date"].dt.strftime("%Y-%m-%d")
    frame.loc[[3, 9], "income"] = [np.inf, -np.inf]
    frame["churned"] = ((age > 50) ^ (rng.random(n) < 0.1)).astype(int)
    path = tmp_path_factory.mktemp("customers") / "customers.csv"
    frame.to_csv(path, index=False)
    return path


def prep(path, **data):
    return prepare(validate({"data": {"source": str(path), "target": "churned", **data}})["data"]).manifest


def test_ids_dates_and_empty_columns_are_warned_and_dropped(customers):
    manifest = prep(customers)
    hygiene = manifest["hygiene"]
    assert hygiene["dropped"] == {"customer_id": "ID-like", "signup_date": "date", "empty": "all missing"}
    assert hygiene["non_finite"] == {"income": 2}
    assert hygiene["capped"]["city"] > 250                   # 400 cities, 100 columns at most
    text = "\n".join(hygiene["warnings"])
    for fragment in ("'customer_id' looks like an ID", "'signup_date' holds dates", "'empty' has no values",
                     "'income' has 2 infinite", "'city' has", "city=__other__"):
        assert fragment in text, fragment
    # inputs: age, income, income__missing (the infs), 99 cities + other — not 3000 ids + 1500 dates
    assert len(manifest["features"]) == 3 + 100
    assert "city=__other__" in manifest["features"]


def test_dates_expand_and_said_columns_are_kept(customers):
    manifest = prep(customers, dates="expand", max_categories=None, columns={"drop": ["city"]})
    assert manifest["hygiene"]["dates_expanded"] == {
        "signup_date": ["signup_date__year", "signup_date__month", "signup_date__day",
                        "signup_date__dayofweek"]}
    assert {"signup_date__year", "signup_date__dayofweek"} <= set(manifest["features"])
    assert not any(f.startswith("city") for f in manifest["features"])
    kept = prep(customers, columns={"categorical": ["age"]})
    assert "age" not in kept["hygiene"]["dropped"] and "age=42" in kept["features"]


def test_prep_cli_prints_the_warnings_and_predict_applies_them(customers, tmp_path):
    out = tmp_path / "data"
    proc = subprocess.run(["alchemist", "prep", "--data-json",
                           json.dumps({"source": str(customers), "target": "churned", "dates": "expand"}),
                           "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("alchemist: warning: data:")]
    assert len(warnings) == 6, proc.stderr                  # id, dates expanded, empty, inf, its imputation, city cap
    from alchemist.train.winner_predictor import encode_new

    manifest = json.loads((out / "prep.json").read_text())
    new = pd.read_csv(customers).head(20)
    features, encoded = encode_new(new, manifest)
    assert "customer_id" not in features and "signup_date__year" in features
    assert encoded.shape == (20, len(manifest["features"]))
