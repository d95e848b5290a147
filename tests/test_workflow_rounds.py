"""Multi-round stages through the real `snakemake`: Optuna TPE rounds (each round a checkpoint,
proposed from the earlier rounds' results) and successive halving (survivors continue)."""
from __future__ import annotations

import json

import pandas as pd

from conftest import Workflow, nothing_to_do

from alchemist.config import load_config_file
from alchemist.search.plan import build_plan


def rounds_config(wf: Workflow) -> None:
    config = wf.config
    config["data"]["coarse"] = {"fraction": 0.5, "rows": 200, "classes": None}
    config["train"].update({"hidden": [16], "epochs": 2, "early_stopping": False})
    config["search"]["pack_size"] = 4
    config["search"]["space"] = {"lr": {"log_uniform": [1e-3, 1e-1]}, "dropout": {"uniform": [0.0, 0.3]}}
    config["search"]["stages"] = [
        {"name": "tpe", "kind": "search", "sampler": "tpe", "rounds": 2, "round_size": 4,
         "data": "train_coarse"},
        {"name": "halving", "kind": "halving", "trials": 6, "eta": 3, "rungs": [1, 3],
         "data": "train_coarse"},
    ]
    config["mlflow"]["enabled"] = False
    wf.write_config(config)


def test_tpe_rounds_and_halving_rungs(workflow):
    rounds_config(workflow)
    workflow.run()
    results = workflow.root / "results"
    # TPE: round 2 was planned from round 1's table and proposes new points
    r1 = json.loads((results / "tpe/round1/plan.json").read_text())["trials"]
    r2 = json.loads((results / "tpe/round2/plan.json").read_text())["trials"]
    assert len(r1) == len(r2) == 4 and not set(r1) & set(r2)
    # ... exactly what TPE proposes when told round 1's results, and not what it proposes when
    # told the opposite results: round 2 depends on round 1's outcome
    config = load_config_file(workflow.root / "config/config.yaml")
    history = pd.read_parquet(results / "tpe/round1/trials.parquet")
    assert set(build_plan(config, "tpe", round_=2, history=history)["trials"]) == set(r2)
    flipped = history.assign(kept_val_metric=-history["kept_val_metric"])
    assert set(build_plan(config, "tpe", round_=2, history=flipped)["trials"]) != set(r2)
    assert len(pd.read_parquet(results / "tpe/trials.parquet")) == 8
    # halving: 6 trials for 1 epoch, the best 6 // 3 = 2 continue to 3 epochs (same ids)
    rung1 = json.loads((results / "halving/round1/plan.json").read_text())["trials"]
    rung2 = json.loads((results / "halving/round2/plan.json").read_text())["trials"]
    assert len(rung1) == 6 and len(rung2) == 2 and set(rung2) <= set(rung1)
    table = pd.read_parquet(results / "halving/trials.parquet").set_index("trial_id")
    for tid in rung2:
        metrics = pd.read_parquet(results / "halving/trials" / tid / "metrics.parquet")
        assert list(metrics["epoch"]) == [1, 2, 3]           # continued, not restarted
        assert table.loc[tid, "epochs_run"] == 3
    assert nothing_to_do(workflow.run())
