"""An imbalanced, churn-like table (5 % positives; numeric and categorical columns) through the
default pipeline as a new user runs it (no rebalance setting), against the same with
`data.rebalance: none` and against scikit-learn's class-weighted logistic regression on the same
prepared train / validation rows (issue 23, point 3: the pipeline ≥ 0.95× the regression's
balanced accuracy).

    python benchmarks/imbalance.py [--rows 4000] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def churn_table(rows: int, seed: int = 7) -> pd.DataFrame:
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=rows, n_features=10, n_informative=4, n_redundant=2,
                               weights=[0.95], flip_y=0.02, class_sep=0.8, random_state=seed)
    frame = pd.DataFrame(X, columns=[f"usage_{i}" for i in range(10)])
    frame["contract"] = np.where(X[:, 0] > 0.5, "monthly", np.where(X[:, 0] > -0.5, "yearly", "two_year"))
    frame["plan"] = pd.cut(X[:, 1], [-np.inf, -1, 0, 1, np.inf], labels=["basic", "plus", "pro", "max"]).astype(str)
    frame["churn"] = np.where(y == 1, "yes", "no")
    return frame


def run_pipeline(where: Path, table: pd.DataFrame, **data) -> dict:
    shutil.copytree(REPO, where, ignore=shutil.ignore_patterns("results", ".snakemake", ".git", "*.egg-info",
                                                              "__pycache__"))
    table.to_csv(where / "churn.csv", index=False)
    config = json.dumps({"source": "churn.csv", "target": "churn", **data}).replace('"', "")
    subprocess.run(["snakemake", "--cores", "2", "--config", f"data={config}", "mlflow={enabled: false}"],
                   cwd=where, check=True, capture_output=True, text=True,
                   env={**__import__("os").environ, "ALCHEMIST_LOCKBOX_DIR": str(where / ".lockbox")})
    winner = json.loads((where / "results/select/winner.json").read_text())
    prep = json.loads((where / "results/data/prep.json").read_text())
    return {"mean": winner["winner"]["mean"], "ci": winner["winner"].get("ci_half_width"),
            "metric": winner["metric"], "rebalance": prep["rebalance"]["method"], "data": where / "results/data"}


def logistic_regression(data: Path) -> float:
    """Class-weighted logistic regression on the prepared (encoded, train-normalised) rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    train, val = pd.read_parquet(data / "train.parquet"), pd.read_parquet(data / "val.parquet")
    features = [c for c in train.columns if c not in ("_row_id", "_y")]
    model = LogisticRegression(class_weight="balanced", max_iter=5000).fit(train[features], train["_y"])
    return float(balanced_accuracy_score(val["_y"], model.predict(val[features])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--keep", type=Path)
    args = ap.parse_args()
    where = args.keep or Path(tempfile.mkdtemp(prefix="alchemist-imbalance-"))
    table = churn_table(args.rows)
    print(f"churn-like table: {len(table)} rows, {(table['churn'] == 'yes').mean():.1%} positives")
    default = run_pipeline(where / "default", table)
    plain = run_pipeline(where / "unweighted", table, rebalance="none")
    lr = logistic_regression(default["data"])
    for name, r in (("pipeline, defaults", default), ("pipeline, rebalance: none", plain)):
        print(f"{name:>28}: {r['metric']} {r['mean']:.4f} ± {r['ci'] or 0:.4f} (training rebalance: "
              f"{r['rebalance']})  ÷ logistic regression {r['mean'] / lr:.3f}")
    print(f"{'class-weighted logistic reg.':>28}: val_balanced_accuracy {lr:.4f} (target: defaults ≥ 0.95×)")
    if not args.keep:
        shutil.rmtree(where, ignore_errors=True)


if __name__ == "__main__":
    main()
