"""The backend probe: a down server fails fast, a busy one is asked again, not declared down."""
from __future__ import annotations

import http.server
import threading
import time

import pytest

from alchemist.track.backend import BackendUnavailable, check_backend
from mlflow_fixtures import free_port


class SlowHealth(http.server.BaseHTTPRequestHandler):
    """Answers /health, but only after `delays.pop(0)` seconds (0 once the list is empty)."""
    delays: list[float] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        time.sleep(self.delays.pop(0) if self.delays else 0)
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowHealth)
    server.handle_error = lambda *args: None  # a client that gave up: a broken pipe, expected
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def test_a_busy_server_is_asked_again(slow_server, capsys):
    SlowHealth.delays[:] = [1.0]  # the first probe gets no answer within 0.3 s
    check_backend(f"http://127.0.0.1:{slow_server.server_port}", timeout=0.3)
    assert "asking again" in capsys.readouterr().err


def test_a_server_that_never_answers_in_time_is_unavailable(slow_server):
    SlowHealth.delays[:] = [1.0, 1.0]
    with pytest.raises(BackendUnavailable, match="unreachable"):
        check_backend(f"http://127.0.0.1:{slow_server.server_port}", timeout=0.2, attempts=2)


def test_a_down_server_fails_at_once():
    start = time.monotonic()
    with pytest.raises(BackendUnavailable, match="refused"):
        check_backend(f"http://127.0.0.1:{free_port()}", timeout=5.0)
    assert time.monotonic() - start < 2.0


def _half_created(db) -> None:
    """What a process killed while MLflow creates a store leaves: tables, no schema version."""
    import sqlite3
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", f"import mlflow; mlflow.MlflowClient('sqlite:///{db}')"
                    ".search_experiments()"], check=True, capture_output=True)
    with sqlite3.connect(db) as con:
        con.execute("DROP TABLE alembic_version")
        con.execute("DROP TABLE datasets")


def _backfill(results):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "alchemist", "sync", "--results", str(results)],
                          capture_output=True, text=True)


def test_a_half_created_store_is_created_again_by_the_backfill(tmp_path):
    from mlflow_fixtures import make_prep, make_stage, run_counts

    from alchemist.track.backend import default_tracking_uri

    results = tmp_path / "results"
    make_prep(results / "data")
    make_stage(results, "coarse", 3, epochs=4)
    results.mkdir(exist_ok=True)
    _half_created(results / "mlflow.db")
    proc = _backfill(results)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "was left half-created" in proc.stderr and "created again" in proc.stderr
    assert len(list(results.glob("mlflow.db.broken-*"))) == 1
    assert len(run_counts(default_tracking_uri(results))["trials"]) == 3


def test_a_damaged_store_with_runs_is_one_line_with_the_way_out(tmp_path):
    import sqlite3

    from mlflow_fixtures import make_prep, make_stage

    results = tmp_path / "results"
    make_prep(results / "data")
    make_stage(results, "coarse", 2, epochs=3)
    assert _backfill(results).returncode == 0
    with sqlite3.connect(results / "mlflow.db") as con:
        con.execute("DROP TABLE alembic_version")
        con.execute("DROP TABLE datasets")
    proc = _backfill(results)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert "is damaged" in line and "run(s): move it aside" in line and "alchemist sync --results" in line, line


def test_the_private_engine_cache_the_repair_relies_on_is_there():
    """alchemist.track.backend._forget_engine drops MLflow's cached engine of a moved-aside
    store (no public call does): if MLflow renames it, this fails, not the repair silently."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    assert isinstance(SqlAlchemyStore._engine_map, dict) and hasattr(SqlAlchemyStore, "_engine_map_lock")
