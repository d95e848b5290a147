"""MLflow sync in one process against a SQLite store: contents, nesting, idempotency, resume."""
from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from alchemist.track import backend, sync
from alchemist.cli import main
from mlflow_fixtures import EPOCH_COLUMNS, make_prep, make_stage, make_trial_dir, run_counts


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """Three stages synced once with the CLI defaults (store and artifacts under results/)."""
    results = tmp_path_factory.mktemp("sweep") / "results"
    make_prep(results / "data")
    ids = {"coarse": make_stage(results, "coarse", 4, epochs=12, statuses=("completed", "diverged")),
           "fine": make_stage(results, "fine", 3, epochs=15, data="train", source="coarse"),
           "repeat": make_stage(results, "repeat", 4, epochs=8, seeds=2, data="train")}
    cwd = os.getcwd()
    os.chdir(results.parent)  # no ./mlruns or ./mlflow.db may appear in the working directory
    try:
        assert main(["sync", "--results", "results", "--marker", "results/sync.json",
                     "--plots-dir", "results/plots"]) == 0
    finally:
        os.chdir(cwd)
    assert not (results.parent / "mlruns").exists() and not (results.parent / "mlflow.db").exists()
    uri = backend.default_tracking_uri(results)
    return results, uri, ids, run_counts(uri)


def _epochs(results, stage, tid):
    return len(pd.read_parquet(results / stage / "trials" / tid / "metrics.parquet"))


def test_one_child_per_trial_with_every_epoch(synced):
    results, uri, ids, counts = synced
    assert set(counts["parents"]) == set(ids)
    assert set(counts["trials"]) == {t for tids in ids.values() for t in tids}
    for stage, tids in ids.items():
        for tid in tids:
            n = _epochs(results, stage, tid)
            assert counts["trials"][tid] == {k: n for k in EPOCH_COLUMNS}, (stage, tid)
    marker = json.loads((results / "sync.json").read_text())
    assert marker["synced"] is True and sum(s["created"] for s in marker["stages"]) == 11


def test_children_nested_under_their_stage_parent(synced):
    results, _, ids, counts = synced
    pack_of = {t: p for stage in ids for p, tids in json.loads(
        (results / stage / "round1" / "plan.json").read_text())["packs"].items() for t in tids}
    for run in counts["runs"]:
        tags = run.data.tags
        if tags["alchemist.kind"] == "trial":
            assert tags["mlflow.parentRunId"] == counts["parents"][tags["alchemist.stage"]]
            assert tags["alchemist.trial_id"] in ids[tags["alchemist.stage"]]
            assert tags["alchemist.status"] in ("completed", "diverged")
            assert tags["alchemist.pack_id"] == pack_of[tags["alchemist.trial_id"]]
            assert tags["alchemist.diagnosis"] == "ok"
            assert run.info.status == "FINISHED" and tags["alchemist.config_id"]
            assert run.info.run_name.startswith(tags["alchemist.stage"] + "-")   # stage-index settings
            assert "lr=" in run.info.run_name


def test_params_artifacts_and_datasets(synced):
    from mlflow import MlflowClient
    results, uri, ids, counts = synced
    client = MlflowClient(uri)
    child = next(r for r in counts["runs"] if r.data.tags.get("alchemist.trial_id") == ids["fine"][0])
    assert child.data.params["hidden"].startswith("[") and float(child.data.params["lr"]) > 0
    assert child.data.metrics["epochs_run"] == 15
    names = {a.path for a in client.list_artifacts(child.info.run_id)}
    assert {"metrics.parquet", "config.json", "summary.json"} <= names
    assert child.info.artifact_uri.startswith((results / "mlartifacts").as_uri())
    parent = client.get_run(counts["parents"]["fine"])
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"metric_vs_params.png", "narrowing.png", "stage_table.parquet", "stage_table.json"
            } <= names
    assert "seed_spread.png" in {a.path for a in client.list_artifacts(counts["parents"]["repeat"])}
    prep = json.loads((results / "data" / "prep.json").read_text())["splits"]
    inputs = {d.dataset.name: d.dataset.digest for d in parent.inputs.dataset_inputs}
    assert inputs == {"train": prep["train"]["file_sha256"][:32], "val": prep["val"]["file_sha256"][:32]}
    coarse = client.get_run(counts["parents"]["coarse"])
    assert {d.dataset.name for d in coarse.inputs.dataset_inputs} == {"train_coarse", "val"}
    assert coarse.data.metrics["n_trials"] == 4 and coarse.data.metrics["n_diverged"] == 2


def test_second_sync_changes_nothing(synced):
    results, uri, ids, counts = synced
    reports = sync.sync_all(results, tracking_uri=uri)
    assert [r.skipped for r in reports] == [len(ids[r.stage]) for r in reports]
    assert all(r.created == r.resumed == r.replaced == r.points == 0 for r in reports)
    again = run_counts(uri)
    assert len(again["runs"]) == len(counts["runs"]) and again["trials"] == counts["trials"]


def test_interrupted_sync_resumes_without_duplicate_points(synced):
    from mlflow import MlflowClient
    results, uri, ids, counts = synced
    tid = ids["coarse"][0]
    client = MlflowClient(uri)
    run_id = next(r.info.run_id for r in counts["runs"] if r.data.tags.get("alchemist.trial_id") == tid)
    client.delete_tag(run_id, sync.DIGEST)  # as if the process died before its last call
    report = sync.sync_stage(results / "coarse", tracking_uri=uri, experiment="alchemist")
    assert (report.resumed, report.created, report.runs[tid]) == (1, 0, run_id)
    assert run_counts(uri)["trials"][tid] == counts["trials"][tid]


def test_changed_files_replace_the_run(synced):
    results, uri, ids, counts = synced
    tid = ids["repeat"][0]
    config = json.loads((results / "repeat" / "trials" / tid / "config.json").read_text())
    make_trial_dir(results / "repeat" / "trials", config, epochs=11)  # e.g. resumed, more epochs
    report = sync.sync_stage(results / "repeat", tracking_uri=uri, experiment="alchemist")
    assert (report.replaced, report.created) == (1, 1)
    after = run_counts(uri)
    assert after["trials"][tid] == {k: 11 for k in EPOCH_COLUMNS}
    assert len(after["runs"]) == len(counts["runs"])


def test_retry_only_transient_errors(monkeypatch):
    monkeypatch.setattr(backend.time, "sleep", lambda s: None)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return "ok"

    assert backend.retry(flaky) == "ok" and len(calls) == 3
    with pytest.raises(ValueError):
        backend.retry(lambda: (_ for _ in ()).throw(ValueError("run 5030ab not found")))
    with pytest.raises(RuntimeError):
        backend.retry(lambda: (_ for _ in ()).throw(RuntimeError("database is locked")), attempts=2)


def test_failed_trial_without_metrics_or_config(tmp_path):
    from mlflow import MlflowClient
    results = tmp_path / "results"
    tid = make_stage(results, "coarse", 1, epochs=3)[0]
    tdir = results / "coarse" / "trials" / tid
    (tdir / "metrics.parquet").unlink()
    (tdir / "config.json").unlink()  # settings then come from round1/plan.json
    summary = json.loads((tdir / "summary.json").read_text())
    (tdir / "summary.json").write_text(json.dumps({**summary, "status": "failed",
                                                   "kept_val_metric": None, "epochs_run": 0}))
    uri = backend.default_tracking_uri(results)
    report = sync.sync_stage(results / "coarse", tracking_uri=uri, experiment="failed")
    run = MlflowClient(uri).get_run(report.runs[tid])
    assert run.info.status == "FAILED" and run.data.tags["alchemist.status"] == "failed"
    assert float(run.data.params["lr"]) > 0 and "val_loss" not in run.data.metrics


def test_a_copied_project_logs_into_its_own_artifacts(synced, tmp_path, capsys):
    """The whole project copied elsewhere (store and mlartifacts with it): the copy's next sync
    points the stored artifact locations at its own folder, once, with one line; nothing new
    is written into the original's artifacts."""
    import shutil

    from mlflow import MlflowClient

    results, uri, ids, _ = synced
    copy = tmp_path / "copy" / "results"
    shutil.copytree(results, copy)
    before = sorted(p.relative_to(results) for p in (results / "mlartifacts").rglob("*"))
    make_stage(copy, "extra", 2, epochs=3, data="train")
    assert main(["sync", "--results", str(copy), "--stage", "extra"]) == 0
    assert "was copied or moved from" in capsys.readouterr().err
    assert sorted(p.relative_to(results) for p in (results / "mlartifacts").rglob("*")) == before
    client = MlflowClient(backend.default_tracking_uri(copy))
    exp = client.get_experiment_by_name("alchemist")
    assert exp.artifact_location == (copy / "mlartifacts").resolve().as_uri()
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert runs and all(r.info.artifact_uri.startswith(exp.artifact_location) for r in runs)
    assert main(["sync", "--results", str(copy), "--stage", "extra"]) == 0
    assert "copied or moved" not in capsys.readouterr().err          # once
