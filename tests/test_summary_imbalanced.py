"""On an imbalanced table (10 % positives) the search ranks by balanced accuracy (data.metric:
auto says so), training weighs the classes alike (data.rebalance: auto) and the run's summary
reports both beside the majority-class baseline."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from sklearn.datasets import make_classification

from conftest import Workflow


@pytest.mark.slow
def test_imbalanced_table_is_ranked_by_balanced_accuracy(workflow: Workflow):
    X, y = make_classification(n_samples=1200, n_features=8, n_informative=4, weights=[0.9, 0.1],
                               random_state=0)
    table = pd.DataFrame(X, columns=[f"x{i}" for i in range(8)]).assign(label=y)
    table.to_csv(workflow.root / "rare.csv", index=False)
    config = workflow.config
    config["data"].update(source="rare.csv", target="label")
    config["train"].update({"hidden": [16], "epochs": 4, "early_stopping": False})
    config["search"].update(pack_size=8, space={"lr": {"log_uniform": [1e-3, 1e-1]}}, stages=[
        {"name": "wide", "kind": "search", "sampler": "random", "trials": 8},
        {"name": "seeds", "kind": "repeat", "from": "wide", "top_n": 2, "seeds": 2},
        {"name": "pick", "kind": "select", "from": "seeds"}])
    config["mlflow"]["enabled"] = False
    workflow.write_config(config)
    proc = workflow.run()
    results = workflow.root / "results"
    prep = json.loads((results / "data/prep.json").read_text())
    assert prep["metric"]["name"] == "balanced_accuracy" and "auto" in prep["metric"]["reason"]
    assert prep["rebalance"]["method"] == "class_weight" and prep["rebalance"]["reason"].startswith("auto")
    weights = prep["rebalance"]["class_weights"]
    assert weights[1] > 3 * weights[0]                        # the rare class weighs more
    winner = json.loads((results / "pick/winner.json").read_text())
    assert winner["metric"] == "val_balanced_accuracy"
    metrics = pd.read_parquet(next((results / "seeds/trials").glob("*/metrics.parquet")))
    assert metrics["val_metric"].tolist() == metrics["val_balanced_accuracy"].tolist()
    assert {"val_accuracy", "val_macro_f1", "val_recall_0", "val_recall_1"} <= set(metrics.columns)
    summary = "\n".join(proc.stdout.strip().splitlines()[-12:])
    assert "selection metric: val_balanced_accuracy (higher is better); auto: the smallest class" in summary
    majority = json.loads((results / "data/prep.json").read_text())["splits"]["val"]["class_counts"]
    share = max(majority.values()) / sum(majority.values())
    assert share > 0.85
    assert (f"majority-class baseline (always the most frequent class): val_accuracy {share:.4f}, "
            "val_balanced_accuracy 0.5000") in summary, summary
    assert f"WINNER {winner['winner']['config_id']}: val_balanced_accuracy" in summary
    assert "training rebalanced: class weight (PB-4; auto: trials are ranked by balanced_accuracy" in summary
    assert winner["winner"]["mean"] > 0.5                     # better than the majority guess
