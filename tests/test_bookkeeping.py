"""Bookkeeping off the critical path (issue 12): training never waits behind figures or MLflow,
one publish job per stage, runs written in bulk exactly as MLflow's client writes them, and
nested `--config` overrides of every type."""
from __future__ import annotations

import json
import os

import pytest

from conftest import Workflow, nothing_to_do
from mlflow_fixtures import EPOCH_COLUMNS, make_stage, run_counts

CHAIN = {"prepare_data", "plan_round", "train_pack", "aggregate_stage", "select_winner"}
BOOKKEEPING = {"diagnostics", "publish_stage", "publish_selection"}


def tiny(wf: Workflow, tracking: bool = True) -> None:
    config = wf.config
    config["data"]["source"] = "sklearn:iris"
    config["train"].update({"hidden": [8], "epochs": 3, "early_stopping": False})
    config["search"].update(pack_size=4, space={"lr": {"log_uniform": [1e-3, 1e-1]}}, stages=[
        {"name": "wide", "kind": "search", "sampler": "random", "trials": 8, "data": "train_coarse"},
        {"name": "narrow", "kind": "search", "sampler": "random", "trials": 4, "from": "wide", "top_k": 2},
        {"name": "seeds", "kind": "repeat", "from": "narrow", "top_n": 1, "seeds": 2},
        {"name": "pick", "kind": "select", "from": "seeds"}])
    config["mlflow"]["enabled"] = tracking
    wf.write_config(config)


def _jobs(wf: Workflow) -> list[tuple[str, float]]:
    """(rule, start time) of every output's job, from Snakemake's metadata."""
    return sorted({(r["rule"], r["starttime"]) for r in (
        json.loads(p.read_text()) for p in (wf.root / ".snakemake/metadata").iterdir())})


@pytest.mark.slow
def test_one_core_runs_the_whole_search_before_any_bookkeeping(workflow):
    """With one core, whenever a search job is ready it goes first (priority): every diagnostics
    and publish job starts after the selection; each stage has one publish job."""
    tiny(workflow)
    proc = workflow.run("--cores", "1")
    jobs = _jobs(workflow)
    last_chain = max(start for rule, start in jobs if rule in CHAIN)
    first_book = min(start for rule, start in jobs if rule in BOOKKEEPING)
    assert last_chain < first_book, jobs
    assert sorted(p.name for p in (workflow.root / "results/logs/publish").iterdir()) == [
        "narrow.log", "pick.log", "seeds.log", "wide.log"]      # one publish job per stage
    for stage in ("wide", "narrow", "seeds", "pick"):
        marker = json.loads((workflow.root / "results" / stage / "mlflow_sync.json").read_text())
        assert marker["synced"] is True
        assert stage == "pick" or (workflow.root / "results/plots" / stage / "learning_curves.png").exists()
    assert "winner" in proc.stdout + proc.stderr
    assert nothing_to_do(workflow.run())


@pytest.mark.slow
def test_nested_config_overrides_of_every_type(workflow):
    """Snakemake 9 hands nested --config values over as strings: booleans, numbers, lists and
    nulls are read as the schema's types; a wrong value is one line naming the key."""
    tiny(workflow)
    ok = workflow.run("-n", "--config", "mlflow={enabled: false}",
                      "train={hidden: [16, 8], lr: 0.01, grad_clip: null, batch_norm: true}",
                      "resources={train: {threads: 2}}")
    assert "publish_stage" in ok.stdout and "mlflow_sync" not in ok.stdout
    bad = workflow.run("-n", "--config", "mlflow={enabled: maybe}", check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == (
        "alchemist: config error: config key 'mlflow.enabled': 'maybe' is not of type 'boolean'")


def test_bulk_written_runs_read_back_like_the_clients(tmp_path, monkeypatch):
    """The SQLite store gets each stage's runs in bulk; read through MlflowClient they hold
    exactly what the client API writes run by run: tags, params, every metric point."""
    from mlflow import MlflowClient

    from alchemist.track import backend, sync
    from alchemist.track.writer import ApiWriter, SqlWriter

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    results = tmp_path / "results"
    make_stage(results, "coarse", 5, epochs=7, statuses=("completed", "diverged"))
    uri = backend.default_tracking_uri(results)
    used = []
    real = sync.writer_for

    def recording(client, exp_id, tracking_uri):
        writer = real(client, exp_id, tracking_uri)
        used.append(type(writer))
        return writer

    monkeypatch.setattr(sync, "writer_for", recording)
    bulk = sync.sync_stage(results / "coarse", tracking_uri=uri, experiment="bulk")
    monkeypatch.setattr(sync, "writer_for", lambda client, exp_id, _: ApiWriter(client, exp_id))
    api = sync.sync_stage(results / "coarse", tracking_uri=uri, experiment="api")
    assert used == [SqlWriter] and bulk.created == api.created == 5
    client = MlflowClient(uri)

    def view(run_id: str) -> dict:
        run = client.get_run(run_id)
        tags = {k: v for k, v in run.data.tags.items() if k not in ("mlflow.parentRunId",)}
        points = {k: [(m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, k)]
                  for k in EPOCH_COLUMNS}
        return {"status": run.info.status, "name": run.info.run_name, "user": run.info.user_id,
                "start": run.info.start_time, "end": run.info.end_time, "params": run.data.params,
                "metrics": run.data.metrics, "tags": tags, "points": points,
                "files": sorted(a.path for a in client.list_artifacts(run_id))}

    for tid in bulk.runs:       # as JSON: NaN points (a diverged trial) compare equal
        assert json.dumps(view(bulk.runs[tid]), sort_keys=True) == json.dumps(
            view(api.runs[tid]), sort_keys=True), tid
    assert run_counts(uri, "bulk")["trials"] == run_counts(uri, "api")["trials"]


@pytest.mark.slow
def test_a_tracking_server_that_is_down_is_said_out_loud(workflow):
    """mlflow.tracking_uri names a server nobody runs: one warning as the run starts, every job
    completes, and the end summary (terminal and summary.md) has one line naming the stages not
    synced and the command that backfills them."""
    from mlflow_fixtures import free_port

    tiny(workflow)
    down = f"http://127.0.0.1:{free_port()}"
    proc = workflow.run("--config", f"mlflow={{'tracking_uri': '{down}'}}")
    err = proc.stderr
    assert err.count("alchemist: warning: mlflow.tracking_uri") == 1 and "unreachable" in err, err[-2000:]
    assert f"alchemist sync --results results --tracking-uri {down}" in err
    summary = (workflow.root / "results/summary.md").read_text()
    failed = [line for line in summary.splitlines() if "MLflow sync FAILED" in line]
    assert len(failed) == 1 and all(s in failed[0] for s in ("wide", "narrow", "seeds", "pick")), summary
    assert f"--tracking-uri {down}" in failed[0] and "alchemist sync" in failed[0]
    assert "MLflow sync FAILED" in proc.stdout + proc.stderr
