"""After the default pipeline: MLflow holds every trial with every epoch, nested per stage; the
HTML report has the leaderboards and figures; the MLflow UI (a real `mlflow server` on the
pipeline's own store, in headless Chromium) lists the trial runs (issue 5)."""
from __future__ import annotations

import json
import os
import shutil
import urllib.parse

import pandas as pd
import pytest

from mlflow_fixtures import CHROMIUM, REPO_RESULTS, chromium, mlflow_server


def store(wf) -> str:
    return f"sqlite:///{wf.root / 'results' / 'mlflow.db'}"


def test_every_trial_and_epoch_is_in_mlflow_nested_under_its_stage(default_pipeline):
    from mlflow import MlflowClient

    results = default_pipeline.root / "results"
    client = MlflowClient(store(default_pipeline))
    exp = client.get_experiment_by_name("alchemist")
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    parents = {r.data.tags["alchemist.stage"]: r.info.run_id for r in runs
               if r.data.tags.get("alchemist.kind") == "stage"}
    children = {r.data.tags["alchemist.trial_id"]: r for r in runs
                if r.data.tags.get("alchemist.kind") == "trial"}
    assert {"coarse", "fine", "repeat"} <= set(parents)
    checked = 0
    for stage in ("coarse", "fine", "repeat"):
        table = pd.read_parquet(results / stage / "trials.parquet")
        for trial_id in table["trial_id"]:
            run = children[trial_id]                           # exactly one run per trial id
            assert run.data.tags["mlflow.parentRunId"] == parents[stage]
            epochs = len(pd.read_parquet(results / stage / "trials" / trial_id / "metrics.parquet"))
            history = client.get_metric_history(run.info.run_id, "val_loss")
            assert len(history) == epochs, (stage, trial_id)
            if stage == "repeat":       # named metrics once per epoch (val_metric is val_accuracy)
                for key in ("val_accuracy", "val_balanced_accuracy", "val_roc_auc", "val_recall_3"):
                    assert len(client.get_metric_history(run.info.run_id, key)) == epochs, key
                assert "kept_val_roc_auc" in run.data.metrics
            checked += 1
    assert checked == len(children) == 32 + 16 + 15
    for stage in ("coarse", "fine", "repeat"):
        assert json.loads((results / stage / "mlflow_sync.json").read_text())["synced"] is True


def test_report_has_leaderboards_figures_and_lockbox(default_pipeline):
    wf = default_pipeline
    wf.run("--report", "results/report.html")
    html = (wf.root / "results/report.html").read_text()
    for name in ("leaderboard.html", "metric_vs_params.png", "narrowing.png", "seed_spread.png",
                 "lr_find.png", "status.txt"):
        assert name in html, name
    from alchemist.report import contents      # each section's caption, as alchemist.report words it
    for section in contents.SECTIONS.values():
        assert " ".join((contents.CAPTIONS / section.caption).read_text().split()[:3]) in html, section
    board = (wf.root / "results/repeat/leaderboard.html").read_text()    # a table, not a download
    assert "<table" in board and "<th>val_accuracy_mean</th>" in board and "<th>lr</th>" in board
    if os.path.exists(CHROMIUM):        # the rendered page, as a person sees it
        dom = chromium((wf.root / "results/report.html").as_uri(), wf.root / "chromium-report",
                       "--dump-dom")
        for category in ("Leaderboards", "Figures", "Lockbox", "Diagnostics"):
            assert category in dom, category
        winner = json.loads((wf.root / "results/select/winner.json").read_text())["winner"]
        assert f"WINNER {winner['config_id']}: val_accuracy" in dom    # the summary: front page
        REPO_RESULTS.mkdir(exist_ok=True)
        shot = wf.root / "report.png"
        chromium((wf.root / "results/report.html").as_uri(), wf.root / "chromium-shot",
                 "--window-size=1400,1000", f"--screenshot={shot}")
        assert shot.stat().st_size > 20_000
        shutil.copy(shot, REPO_RESULTS / "report_front_page.png")     # kept as a CI artifact


@pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("ALCHEMIST_REQUIRE_CHROMIUM"),
                    reason=f"{CHROMIUM} absent (.ci/run installs it and sets ALCHEMIST_REQUIRE_CHROMIUM=1, "
                           "so there a missing Chromium fails instead)")
def test_mlflow_ui_lists_the_pipeline_runs(default_pipeline, tmp_path):
    """Headless Chromium on a real `mlflow server`: the runs view lists the trials by readable
    names; the select run shows the winner's named metric with its interval and a logged model;
    the winner's model is registered."""
    from mlflow import MlflowClient

    results = default_pipeline.root / "results"
    winner = json.loads((results / "select/winner.json").read_text())
    w = winner["winner"]
    with mlflow_server(results / "mlflow.db", results / "mlartifacts") as uri:
        client = MlflowClient(uri)
        exp_id = client.get_experiment_by_name("alchemist").experiment_id
        select = client.search_runs([exp_id], "tags.`alchemist.kind` = 'select'")[0]
        # sorting by a metric lists child runs flat (the default date order nests them)
        query = urllib.parse.urlencode({"orderByKey": "metrics.`kept_val_accuracy`", "orderByAsc": "false",
                                        "workflowType": "machine_learning"})
        runs_url = f"{uri}/#/experiments/{exp_id}/runs?{query}"
        dom = chromium(runs_url, tmp_path / "dom", "--dump-dom")
        assert "fine-0" in dom or "coarse-0" in dom, dom[-2000:]        # readable run names
        select_url = f"{uri}/#/experiments/{exp_id}/runs/{select.info.run_id}"
        page = chromium(select_url, tmp_path / "dom2", "--dump-dom")
        assert f"select: winner {w['config_id']}" in page
        assert "val_accuracy_mean" in page and "val_accuracy_ci_half_width" in page
        assert f"{w['mean']:.4f}"[:5] in page and "winner" in page      # the value and the logged model
        models = chromium(f"{uri}/#/models", tmp_path / "dom3", "--dump-dom")
        assert "alchemist-winner" in models
        shots = {}
        for name, url in (("mlflow_ui.png", runs_url), ("mlflow_select_run.png", select_url)):
            shots[name] = tmp_path / name
            chromium(url, tmp_path / f"shot-{name}", "--window-size=1600,1000", f"--screenshot={shots[name]}")
    REPO_RESULTS.mkdir(exist_ok=True)
    for name, shot in shots.items():
        assert shot.stat().st_size > 20_000
        shutil.copy(shot, REPO_RESULTS / name)       # kept as CI artifacts
