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


def test_editing_the_data_file_reruns_prep_and_touching_it_does_not(workflow):
    """A user's CSV is an input of prep: a content change reruns it (and so everything after)."""
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame
    path = workflow.root / "wine.csv"
    frame.to_csv(path, index=False)
    workflow.update(data={"source": str(path), "target": "target"})
    workflow.run("results/data/prep.json")
    assert nothing_to_do(workflow.run("results/data/prep.json"))
    frame.iloc[:150].to_csv(path, index=False)                 # fewer rows: a real edit
    proc = workflow.run("results/data/prep.json")
    assert "prepare_data" in proc.stdout + proc.stderr
    manifest = json.loads((workflow.root / "results/data/prep.json").read_text())
    assert manifest["source"]["rows"] == 150
