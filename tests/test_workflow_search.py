"""Search as a DAG, driven by the real `snakemake`: rerun only what changed (issue 4).

A tiny config (few epochs, a 200-row coarse subsample, packs of 8) keeps each run short; the
checks are on which jobs Snakemake decides to run and which files it leaves untouched.
"""
from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from conftest import Workflow, nothing_to_do

TINY_TRAIN = {"hidden": [16], "epochs": 2, "batch_size": 64, "early_stopping": False}


def tiny(wf: Workflow, trials: int = 16, stages=None) -> dict:
    config = wf.config
    config["data"]["coarse"] = {"fraction": 0.5, "rows": 200, "classes": None}
    config["train"].update(TINY_TRAIN)
    config["search"]["pack_size"] = 8
    config["search"]["space"] = {"lr": {"log_uniform": [1e-3, 1e-1]},
                                 "dropout": {"uniform": [0.0, 0.3]},
                                 "hidden": {"choice": [[16], [32]]}}
    config["search"]["stages"] = stages or [
        {"name": "coarse", "kind": "search", "sampler": "random", "trials": trials,
         "data": "train_coarse", "set": {"epochs": 2}},
        {"name": "fine", "kind": "search", "sampler": "random", "trials": 4, "data": "train",
         "from": "coarse", "top_k": 3, "set": {"epochs": 3}},
    ]
    config["mlflow"]["enabled"] = False
    wf.write_config(config)
    return config


def jobs_planned(wf: Workflow) -> dict[str, int]:
    """Job counts per rule from a dry run (checkpoint-dependent jobs appear once known)."""
    out = wf.run("-n").stdout
    counts = {}
    table = out[out.rfind("Job stats:"):] if "Job stats:" in out else ""
    for line in table.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


def pack_files(wf: Workflow, stage: str) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (wf.root / "results" / stage).glob("round*/packs/*.json")}


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    wf = Workflow(tmp_path_factory.mktemp("search") / "wf")
    tiny(wf)
    wf.run()
    return wf


def test_rerun_without_change_and_reordered_yaml_do_nothing(searched):
    wf = searched
    assert nothing_to_do(wf.run())
    config = wf.config
    space = config["search"]["space"]
    space["hidden"]["choice"].reverse()                       # reorder choices
    config["search"]["space"] = dict(reversed(list(space.items())))   # reorder keys
    config["search"]["stages"] = [dict(reversed(list(s.items()))) for s in config["search"]["stages"]]
    config["train"] = dict(reversed(list(config["train"].items())))
    wf.write_config(config)
    assert nothing_to_do(wf.run())


def test_more_trials_trains_only_new_packs(searched):
    wf = searched
    before = pack_files(wf, "coarse")
    plan = json.loads((wf.root / "results/coarse/round1/plan.json").read_text())
    tiny(wf, trials=24)
    wf.run("results/coarse/trials.parquet")
    after = pack_files(wf, "coarse")
    new_plan = json.loads((wf.root / "results/coarse/round1/plan.json").read_text())
    kept = [p for p in plan["packs"] if p in new_plan["packs"]]
    changed = set(plan["packs"]) - set(new_plan["packs"])
    groups = len({tuple(plan["trials"][t]["hidden"]) for t in plan["trials"]})
    assert set(plan["trials"]) < set(new_plan["trials"])          # old trial ids all kept
    assert len(changed) <= groups                               # ≤ one partial pack per group
    for pack in kept:                                           # finished packs untouched
        assert after[f"{pack}.json"] == before[f"{pack}.json"]
    retrained = {name for name in after if before.get(name) != after[name]}
    new_trials = set(new_plan["trials"]) - set(plan["trials"])
    trained = {t for name in retrained for t in new_plan["packs"][name[:-5]]}
    assert new_trials <= trained and len(trained - new_trials) <= 8 * groups


def test_fine_setting_change_leaves_coarse_untouched(searched):
    wf = searched
    tiny(wf, trials=24)
    wf.run()
    coarse_before = pack_files(wf, "coarse")
    fine_plan = wf.root / "results/fine/round1/plan.json"
    fine_before = json.loads(fine_plan.read_text())["packs"]
    config = wf.config
    config["search"]["stages"][1]["set"] = {"epochs": 4}
    wf.write_config(config)
    wf.run()
    assert pack_files(wf, "coarse") == coarse_before
    plan = json.loads(fine_plan.read_text())
    assert plan["packs"] and not set(plan["packs"]) & set(fine_before)   # new ids, new packs
    assert all(t["epochs"] == 4 for t in plan["trials"].values())
    assert set(pd.read_parquet(wf.root / "results/fine/trials.parquet")["trial_id"]) == set(plan["trials"])


def test_prep_change_reruns_everything(searched):
    wf = searched
    tiny(wf, trials=24)
    wf.run()
    plans = {s: json.loads((wf.root / f"results/{s}/round1/plan.json").read_text())["packs"]
             for s in ("coarse", "fine")}
    before = {s: pack_files(wf, s) for s in plans}
    wf.update(data={"seed": 3})
    planned = jobs_planned(wf)
    assert planned.get("prepare_data") == 1
    assert planned.get("train_pack", 0) >= len(plans["coarse"])
    wf.run()
    for stage, packs in plans.items():
        after = pack_files(wf, stage)
        current = json.loads((wf.root / f"results/{stage}/round1/plan.json").read_text())["packs"]
        for pack in current:                      # every pack of the new plan was (re)trained
            assert after[f"{pack}.json"] != before[stage].get(f"{pack}.json"), (stage, pack)
