"""Against a real `mlflow server` on 127.0.0.1: 16 syncs at once, and an outage then a backfill.
(The UI check in Chromium runs against the default pipeline's store: test_pipeline_results.py.)"""
from __future__ import annotations

import json

import pytest

from alchemist.cli import main
from mlflow_fixtures import (assert_complete, free_port, make_prep, make_stage, mlflow_server,
                             run_at_once)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    with mlflow_server(root / "mlflow.db", root / "artifacts") as uri:
        yield uri


def test_16_syncs_at_once_against_a_server(server, tmp_path):
    """The default server's DB pool (15) is where async logging lost points (FIELD-NOTES);
    16 batched syncs at once exceed it. (32 at once are tested against SQLite.)"""
    results = tmp_path / "results"
    ids = {f"s{i:02d}": make_stage(results, f"s{i:02d}", 1, epochs=20) for i in range(16)}
    timing, done = run_at_once([["sync", "--results", str(results), "--stage", stage,
                                  "--tracking-uri", server, "--experiment", "concurrent"]
                                 for stage in ids])
    failed = [(rc, err[-1500:]) for rc, _, err in done if rc != 0]
    assert not failed, failed
    points = assert_complete(server, "concurrent", ids, 20)
    assert points == 16 * 20 * 10
    print(f"\n16 concurrent syncs against mlflow server: {timing}, {points} points, no loss")


def test_outage_then_backfill(server, tmp_path, capsys):
    results = tmp_path / "results"
    make_prep(results / "data")
    ids = {stage: make_stage(results, stage, 3, epochs=10) for stage in ("coarse", "fine", "repeat")}
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens: the server is down all sweep
    for stage in ids:  # what the pipeline's per-stage rule runs
        marker = results / stage / "mlflow_sync.json"
        assert main(["sync", "--results", str(results), "--stage", stage, "--soft",
                     "--tracking-uri", down, "--marker", str(marker)]) == 0
        err = capsys.readouterr().err
        assert err.count("WARNING") == 1 and "alchemist sync" in err, err
        state = json.loads(marker.read_text())
        assert state["synced"] is False and "unreachable" in state["reason"]
    assert main(["sync", "--results", str(results), "--tracking-uri", down]) == 1
    assert "unreachable" in capsys.readouterr().err
    # the server is back: the explicit command backfills everything, a second run adds nothing
    assert main(["sync", "--results", str(results), "--tracking-uri", server,
                 "--experiment", "backfill", "--marker", str(results / "sync.json")]) == 0
    assert assert_complete(server, "backfill", ids, 10) == 9 * 10 * 10
    assert main(["sync", "--results", str(results), "--tracking-uri", server,
                 "--experiment", "backfill"]) == 0
    assert capsys.readouterr().out.count("0 created, 0 resumed, 3 unchanged, 0 replaced") == 3
    assert assert_complete(server, "backfill", ids, 10) == 900
