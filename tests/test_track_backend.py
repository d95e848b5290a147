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
