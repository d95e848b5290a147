"""The real `snakemake` on the default config, prep target: runs once, then nothing to do."""
from __future__ import annotations

import json

from conftest import nothing_to_do


def test_prep_runs_then_nothing_to_do_then_reruns_on_change(workflow):
    workflow.run("results/data/prep.json")
    manifest = json.loads((workflow.root / "results/data/prep.json").read_text())
    assert manifest["source"]["name"] == "sklearn:digits"
    assert (workflow.root / "results/logs/prepare_data.log").exists()

    assert nothing_to_do(workflow.run("results/data/prep.json"))
    # same settings with the keys in another order: still nothing to do
    config = workflow.config
    config["data"] = dict(reversed(list(config["data"].items())))
    workflow.write_config(config)
    assert nothing_to_do(workflow.run("results/data/prep.json"))

    workflow.update(data={"seed": 7})
    proc = workflow.run("results/data/prep.json")
    assert "prepare_data" in proc.stdout + proc.stderr
    assert json.loads((workflow.root / "results/data/prep.json").read_text())["config"]["seed"] == 7
