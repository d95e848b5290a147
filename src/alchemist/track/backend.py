"""The MLflow backend: the URI, a health check that tells an outage from a busy server, retries
of transient errors, and the client + experiment. The ONLY place that imports mlflow (lazily)
besides the sync and the lockbox's MLflow ledger, which get it from here."""
from __future__ import annotations

import contextlib
import os
import random
import re
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from alchemist.results_layout import ResultsLayout
from alchemist.atomic import file_lock

_TRANSIENT = re.compile(r"database is locked|connection|timed out|timeout|temporarily|deadlock|"
                        r"queuepool|max retries|busy|\b(?:429|502|503|504)\b")


class BackendUnavailable(RuntimeError):
    """The tracking backend cannot be reached (server down, store not writable)."""


def default_tracking_uri(results_dir: Path) -> str:
    """The results store's URI: sqlite:///<absolute results_dir>/mlflow.db."""
    return f"sqlite:///{ResultsLayout(Path(results_dir)).store.resolve()}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI; None for any other URI."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def check_backend(tracking_uri: str, timeout: float = 5.0, attempts: int = 4) -> None:
    """Raise BackendUnavailable unless the backend answers (HTTP `/health`, SQLite folder).

    A refused connection means the server is down: fail at once. A timeout means it is busy
    (e.g. many syncs at once on a loaded machine): ask again with doubled patience, so a slow
    but healthy server (5+10+20+40 s by default) is not mistaken for an outage."""
    if urllib.parse.urlparse(tracking_uri).scheme in ("http", "https"):
        url = tracking_uri.rstrip("/") + "/health"
        for attempt in range(attempts):
            wait = timeout * 2 ** attempt
            try:  # urlopen raises HTTPError (an OSError) on any status >= 400
                urllib.request.urlopen(url, timeout=wait).close()
                break
            except (OSError, ValueError) as err:
                slow = isinstance(err, TimeoutError) or isinstance(getattr(err, "reason", None),
                                                                   TimeoutError)
                if not slow or attempt == attempts - 1:
                    raise BackendUnavailable(f"tracking server {tracking_uri} unreachable: "
                                             f"{getattr(err, 'reason', err)}") from err
                print(f"alchemist.track: {url} gave no answer in {wait:g} s, asking again",
                      file=sys.stderr)
    if (db := sqlite_path(tracking_uri)) is not None:
        with contextlib.suppress(OSError):
            db.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(db.parent, os.W_OK) or (db.exists() and not os.access(db, os.W_OK)):
            raise BackendUnavailable(f"SQLite store {db} is not writable")


def unreachable_warning(tracking_uri: str | None, experiment: str) -> str | None:
    """At the start of a run: one line when the configured server gives no answer within 3 s
    (the runs go on, results stay in files, the stage syncs say so and a backfill catches up);
    None when it answers or the store is local."""
    if not tracking_uri or urllib.parse.urlparse(tracking_uri).scheme not in ("http", "https"):
        return None
    try:
        check_backend(tracking_uri, timeout=3.0, attempts=1)
    except BackendUnavailable as err:
        return (f"mlflow.tracking_uri: {err}; the runs go on and every result stays in files; once "
                f"it is up: alchemist sync --results results --tracking-uri {tracking_uri} "
                f"--experiment {experiment}")
    return None


def _mlflow():
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # telemetry raced logging calls offline
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # and its extra GET
    import mlflow
    return mlflow


def retry(fn, *args, attempts: int = 8, also: tuple[str, ...] = (), **kwargs):
    """Call fn, retrying transient errors with jittered exponential backoff (≤ ~40 s); `also`:
    more error texts (lower case) that a retry cures for this call."""
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - MLflow raises many types
            text = f"{type(err).__name__}: {err}"
            cured = _TRANSIENT.search(text.lower()) or any(a in text.lower() for a in also)
            if attempt == attempts - 1 or not cured:
                raise
            print(f"alchemist.track: retry {attempt + 1}/{attempts - 1} after {text[:160]}",
                  file=sys.stderr)
            time.sleep(min(8.0, 0.2 * 2 ** attempt) * random.uniform(0.5, 1.5))


def connect(tracking_uri: str, name: str) -> tuple:
    """(MlflowClient, experiment id). MlflowClient() creates/migrates a SQLite schema and racing
    first uses corrupt it: construction and experiment creation run under a lock beside the DB."""
    check_backend(tracking_uri)
    mlflow = _mlflow()
    db = sqlite_path(tracking_uri)
    if db:  # ~1.5 s of imports: outside the lock, so waiting processes do not queue for it
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    location = (db.parent / "mlartifacts").as_uri() if db else None  # no ./mlruns in cwd
    with file_lock(db.with_name(db.name + ".lock")) if db else contextlib.nullcontext():
        client = _open_store(mlflow, tracking_uri, db)
        if db:
            relocate(db, location)
        for _ in range(5):
            exp = retry(client.get_experiment_by_name, name)
            if exp is not None:
                if exp.lifecycle_stage == "deleted":
                    retry(client.restore_experiment, exp.experiment_id)
                return client, exp.experiment_id
            try:
                return client, retry(client.create_experiment, name, artifact_location=location)
            except Exception as err:  # noqa: BLE001 - another process created it first
                if "already exists" not in str(err).lower():
                    raise
    raise RuntimeError(f"could not find or create MLflow experiment {name!r}")


_SCHEMA_BROKEN = re.compile(r"already exists|duplicate column|out-of-date database schema|no such "
                            r"table|alembic|malformed|not a database", re.IGNORECASE)


def _open_store(mlflow, tracking_uri: str, db: Path | None):
    """An MlflowClient whose store answers. A SQLite store left half-created (a process killed
    while MLflow created or migrated its tables: `table … already exists`, `duplicate column`)
    that holds no run is moved aside and created again, with one line; one that holds runs is
    BackendUnavailable with the command that rebuilds it (every run is in results/ files)."""
    def client():
        c = retry(mlflow.MlflowClient, tracking_uri)
        retry(c.search_experiments, max_results=1)
        return c
    try:
        return client()
    except Exception as err:  # noqa: BLE001 - MLflow and SQLAlchemy raise many types
        reason = f"{type(err).__name__}: {err}".splitlines()[0][:200]
        if not db or not db.exists() or not _SCHEMA_BROKEN.search(reason):
            raise
        runs = _stored_runs(db)
        if runs:
            raise BackendUnavailable(f"the MLflow store {db} is damaged ({reason}) and holds {runs} "
                                     f"run(s): move it aside (mv {db} {db}.broken) and run `alchemist "
                                     f"sync --results {db.parent}` to rebuild it from the files") from None
        aside = db.with_name(f"{db.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
        db.rename(aside)
        _forget_engine(db)
        print(f"alchemist.track: the MLflow store {db} was left half-created ({reason}); it held no "
              f"run, so it was moved to {aside} and created again", file=sys.stderr)
        return client()


def _forget_engine(db: Path) -> None:
    """Drop MLflow's cached SQLAlchemy engine for this file. PRIVATE API, kept on purpose:
    SqlAlchemyStore caches one engine per URI for the process (`_engine_map`) and its pooled
    connections keep the moved-aside file open, so the store created again would be the broken
    one; no public call drops it. tests/test_track_backend.py fails loudly if it disappears."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    engines = SqlAlchemyStore._engine_map
    with SqlAlchemyStore._engine_map_lock:
        for uri in [u for u in engines if sqlite_path(u) == db]:
            engines.pop(uri).dispose()


def _stored_runs(db: Path) -> int:
    """Runs in a SQLite store (0 when it has no readable runs table)."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(db, timeout=60)) as con:
            return int(con.execute("SELECT count(*) FROM runs").fetchone()[0])
    except sqlite3.Error:
        return 0


#: The columns of an MLflow SQLite store that hold artifact locations (absolute file URIs:
#: MLflow resolves a relative location when an experiment is created, and has no API to move one).
_LOCATIONS = (("experiments", "artifact_location"), ("runs", "artifact_uri"),
              ("model_versions", "storage_location"), ("model_versions", "source"),
              ("logged_models", "artifact_location"))


def relocate(db: Path, location: str) -> None:
    """A store copied or moved with its project (its `mlartifacts` beside it) still names the
    old folder: runs logged in the copy would write into the original's artifacts. Point every
    stored location under the old `.../mlartifacts` at this store's own, once, with one line.
    Written in SQL because MLflow offers no call that changes an artifact location."""
    import sqlite3

    if not db.exists():
        return
    with contextlib.closing(sqlite3.connect(db, timeout=60)) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "experiments" not in tables:
            return
        old = {loc[:loc.index("/mlartifacts") + len("/mlartifacts")]
               for (loc,) in con.execute("SELECT artifact_location FROM experiments")
               if loc and loc.startswith("file://") and "/mlartifacts" in loc}
        old = {o for o in old if o != location}
        if not old:
            return
        with con:
            for prefix in old:
                for table, column in _LOCATIONS:
                    columns = {r[1] for r in con.execute(f"PRAGMA table_info({table})")} if table in tables else ()
                    if column in columns:
                        con.execute(f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                                    f"WHERE substr({column}, 1, ?) = ?",
                                    (location, len(prefix) + 1, len(prefix), prefix))
    print(f"alchemist.track: the store {db} was copied or moved from {', '.join(sorted(old))}: its "
          f"artifact locations now point at {location}", file=sys.stderr)
