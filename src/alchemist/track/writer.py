"""Writing many runs into MLflow: created, filled and finished in batches.

MLflow's client writes one run at a time: create_run, log_batch, set_terminated, set_tag, each a
transaction. Into its SQLAlchemy store (SQLite by default) a trial's log_batch of ~350 metric
points alone costs ~50 ms of ORM work on a 2-core machine, so a 1,000-trial stage spends about a
minute there. MLflow has no call that writes many runs at once, so for an SQLAlchemy-backed store
(`SqlWriter`) the runs of a batch are inserted in ONE transaction through MLflow's own table
models (mlflow.store.tracking.dbmodels) with SQLAlchemy Core — the rows MLflow itself writes
(runs, tags, params, metrics, latest_metrics), the same NaN/inf encoding — and finished in a
second one. Before using it the writer checks that the tables need no column it does not fill;
otherwise, and for a tracking server, `ApiWriter` uses the client (a few threads for a server).
Artifacts go straight to the run's artifact repository (no lookup of the run per file).
"""
from __future__ import annotations

import math
import os
import shutil
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from alchemist.track.backend import retry

RUN_NAME, PARENT = "mlflow.runName", "mlflow.parentRunId"


@dataclass
class RunSpec:
    """One run to write: its name, start time, tags, params and metric points."""
    name: str
    start_ms: int
    tags: dict[str, str]
    params: dict[str, str]
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)  # key, value, ms, step


@dataclass
class RunRef:
    """An existing run as far as syncing needs it (the shape of mlflow.entities.Run's fields)."""
    info: object        # .run_id, .artifact_uri
    data: object        # .tags: the tags asked for


@dataclass
class Finish:
    run_id: str
    status: str              # FINISHED | FAILED
    end_ms: int
    tags: dict[str, str]     # written last: the run is complete once they are


def log_files(artifact_uri: str, files: list[Path], tracking_uri: str) -> None:
    """Copy files into a run's artifact root: a local root (the SQLite store's) by plain file
    copies — MLflow's local repository re-validates the destination path per file, ~1 ms each —
    any other through its artifact repository (no run lookup per file; a server's
    `mlflow-artifacts:` root resolved against its tracking URI)."""
    if artifact_uri.startswith("file:"):
        from mlflow.utils.file_utils import local_file_uri_to_path

        root = Path(local_file_uri_to_path(artifact_uri))
        root.mkdir(parents=True, exist_ok=True)
        for path in files:
            target = root / Path(path).name
            target.unlink(missing_ok=True)
            try:               # results files are replaced, never edited: a link keeps this version
                os.link(path, target)
            except OSError:    # another file system
                shutil.copyfile(path, target)
        return
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(artifact_uri, tracking_uri=tracking_uri)
    for path in files:
        retry(repo.log_artifact, str(path))


class ApiWriter:
    """Through MlflowClient, run by run (threads only for an HTTP server)."""

    def __init__(self, client, experiment_id: str, threads: int = 1):
        self.client, self.experiment_id, self.threads = client, experiment_id, threads

    def _map(self, fn, items) -> list:
        if self.threads <= 1 or len(items) <= 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(self.threads) as pool:
            return list(pool.map(fn, items))

    def runs_tagged(self, match: dict[str, str], keys: tuple[str, ...] = ()) -> list:
        """Active runs of the experiment carrying every tag in `match`, oldest first."""
        where = " and ".join(f"tags.`{k}` = '{v}'" for k, v in match.items())
        found, token = [], None
        while True:
            page = retry(self.client.search_runs, [self.experiment_id], where, max_results=1000,
                         order_by=["attributes.start_time ASC"], page_token=token)
            found.extend(page)
            if not (token := page.token):
                return found

    def create(self, specs: list[RunSpec]) -> list[tuple[str, str]]:
        """Create and fill the runs of `specs`; their (run_id, artifact_uri) in order, still RUNNING."""
        def one(spec: RunSpec) -> tuple[str, str]:
            run = retry(self.client.create_run, self.experiment_id, start_time=spec.start_ms,
                        run_name=spec.name, tags=spec.tags)
            self.fill(run.info.run_id, spec)
            return run.info.run_id, run.info.artifact_uri
        return self._map(one, specs)

    def fill(self, run_id: str, spec: RunSpec) -> None:
        """Params and metrics (re-logging the same points is a no-op in MLflow)."""
        from mlflow.entities import Metric, Param

        params = [Param(k, v) for k, v in spec.params.items()]
        metrics = [Metric(*m) for m in spec.metrics]
        for i in range(0, len(params), 100):
            retry(self.client.log_batch, run_id, params=params[i:i + 100], synchronous=True)
        for i in range(0, len(metrics), 1000):
            retry(self.client.log_batch, run_id, metrics=metrics[i:i + 1000], synchronous=True)

    def finish(self, items: list[Finish]) -> None:
        """Terminate each run with its status and end time, then set its closing tags."""
        from mlflow.entities import RunTag

        def one(f: Finish) -> None:
            retry(self.client.set_terminated, f.run_id, f.status, end_time=f.end_ms)
            retry(self.client.log_batch, f.run_id, tags=[RunTag(k, v) for k, v in f.tags.items()],
                  synchronous=True)
        self._map(one, items)


class SqlWriter(ApiWriter):
    """Bulk rows into MLflow's SQLAlchemy store: one transaction to create a batch, one to finish."""

    def __init__(self, client, experiment_id: str, store):
        super().__init__(client, experiment_id)
        from mlflow.store.tracking.dbmodels import models

        self.store, self.m = store, models
        self.artifact_location = client.get_experiment(experiment_id).artifact_location

    @classmethod
    def for_client(cls, client, experiment_id: str):
        """A SqlWriter when the store is SQLAlchemy-backed and its tables fit, else None."""
        try:
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            store = client._tracking_client.store
            if not isinstance(store, SqlAlchemyStore):
                return None
            writer = cls(client, experiment_id, store)
            writer.check_tables()
            writer.probe()
            return writer
        except Exception as err:  # noqa: BLE001 - any mismatch: the client API instead
            print(f"alchemist.track: bulk writes unavailable ({type(err).__name__}: {err}); "
                  "using the MLflow client", file=sys.stderr)
            return None

    FILLED = {"runs": {"run_uuid", "name", "source_type", "source_name", "entry_point_name", "user_id",
                       "status", "start_time", "end_time", "deleted_time", "source_version",
                       "lifecycle_stage", "artifact_uri", "experiment_id"},
              "tags": {"key", "value", "run_uuid"}, "params": {"key", "value", "run_uuid"},
              "metrics": {"key", "value", "timestamp", "step", "is_nan", "run_uuid"},
              "latest_metrics": {"key", "value", "timestamp", "step", "is_nan", "run_uuid"}}

    def tables(self) -> dict:
        """MLflow's runs, tags, params, metrics and latest_metrics tables, by table name."""
        m = self.m
        return {t.__tablename__: t.__table__ for t in
                (m.SqlRun, m.SqlTag, m.SqlParam, m.SqlMetric, m.SqlLatestMetric)}

    def check_tables(self) -> None:
        """Raise RuntimeError unless each table has every column FILLED names and requires no other."""
        for name, table in self.tables().items():
            columns = {c.name for c in table.columns}
            unknown = self.FILLED[name] - columns
            needed = {c.name for c in table.columns if not c.nullable and c.default is None
                      and c.server_default is None and c.autoincrement is not True}
            if unknown or needed - self.FILLED[name]:
                raise RuntimeError(f"MLflow table {name} differs: {sorted(unknown | (needed - self.FILLED[name]))}")

    def runs_tagged(self, match: dict[str, str], keys: tuple[str, ...] = ()) -> list[RunRef]:
        """As ApiWriter's, from one query of the runs and tags tables (search_runs loads every
        run's params and metrics too: ~4 ms a run), with the tags `match` and `keys` only."""
        from types import SimpleNamespace

        from sqlalchemy import select

        runs, tags = self.tables()["runs"], self.tables()["tags"]
        query = (select(runs.c.run_uuid, runs.c.artifact_uri, tags.c.key, tags.c.value)
                 .join(tags, tags.c.run_uuid == runs.c.run_uuid)
                 .where(runs.c.experiment_id == int(self.experiment_id),
                        runs.c.lifecycle_stage == "active", tags.c.key.in_([*match, *keys]))
                 .order_by(runs.c.start_time, runs.c.run_uuid))
        found: dict[str, tuple[str, dict]] = {}
        with self.store.engine.connect() as conn:
            for run_id, uri, key, value in conn.execute(query):
                found.setdefault(run_id, (uri, {}))[1][key] = value
        return [RunRef(SimpleNamespace(run_id=rid, artifact_uri=uri), SimpleNamespace(tags=t))
                for rid, (uri, t) in found.items() if all(t.get(k) == v for k, v in match.items())]

    def probe(self) -> None:
        """Write one run in bulk, read it back through the client, delete its rows: the rows
        this writer makes are what MLflow itself reads (else the client API is used)."""
        spec = RunSpec("alchemist-probe", 1, {"alchemist.kind": "probe"}, {"p": "1"},
                       [("m", 0.5, 1, 1), ("m", float("nan"), 2, 2)])
        [(run_id, _)] = self.create([spec])
        try:
            self.finish([Finish(run_id, "FINISHED", 3, {"alchemist.done": "1"})])
            run = self.client.get_run(run_id)
            history = self.client.get_metric_history(run_id, "m")
            if (run.data.params != {"p": "1"} or run.info.status != "FINISHED"
                    or run.data.tags.get("alchemist.done") != "1" or len(history) != 2):
                raise RuntimeError("a bulk-written run reads back differently")
        finally:
            with self.store.engine.begin() as conn:
                for name in ("latest_metrics", "metrics", "params", "tags", "runs"):
                    table = self.tables()[name]
                    conn.execute(table.delete().where(table.c.run_uuid == run_id))

    def create(self, specs: list[RunSpec]) -> list[tuple[str, str]]:
        """Insert the runs of `specs` (RUNNING, with tags, params, metrics) in one transaction; their
        (run_id, artifact_uri) in order."""
        rows: dict[str, list[dict]] = {name: [] for name in self.FILLED}
        out = []
        for spec in specs:
            run_id = uuid.uuid4().hex
            uri = f"{self.artifact_location.rstrip('/')}/{run_id}/artifacts"
            out.append((run_id, uri))
            rows["runs"].append({
                "run_uuid": run_id, "name": spec.name, "source_type": "UNKNOWN", "source_name": "",
                "entry_point_name": "", "user_id": spec.tags.get("mlflow.user", "unknown"),
                "status": "RUNNING",
                "start_time": spec.start_ms, "end_time": None, "deleted_time": None,
                "source_version": "", "lifecycle_stage": "active", "artifact_uri": uri,
                "experiment_id": int(self.experiment_id)})
            rows["tags"] += [{"key": k, "value": v, "run_uuid": run_id}
                             for k, v in {RUN_NAME: spec.name, **spec.tags}.items()]
            rows["params"] += [{"key": k, "value": v, "run_uuid": run_id} for k, v in spec.params.items()]
            points, latest = {}, {}
            for key, value, ms, step in spec.metrics:
                is_nan, value = self.store.sanitize_metric_value(float(value))
                point = {"key": key, "value": value, "timestamp": ms, "step": step, "is_nan": is_nan,
                         "run_uuid": run_id}
                points[(key, ms, step, value, is_nan)] = point
                best = latest.get(key)
                if best is None or (step, ms, value) > (best["step"], best["timestamp"], best["value"]):
                    latest[key] = point
            rows["metrics"] += points.values()
            rows["latest_metrics"] += latest.values()
        self._insert(rows)
        return out

    def _insert(self, rows: dict[str, list[dict]]) -> None:
        tables = self.tables()

        def write():
            with self.store.engine.begin() as conn:
                if conn.dialect.name == "sqlite":   # a big batch's pages stay in memory until commit
                    conn.exec_driver_sql("PRAGMA cache_size = -262144")
                for name in ("runs", "tags", "params", "metrics", "latest_metrics"):
                    if rows.get(name):
                        _executemany(conn, tables[name], rows[name])
        retry(write)

    def finish(self, items: list[Finish]) -> None:
        """Set each run's status and end time and replace its closing tags, in one transaction."""
        from sqlalchemy import bindparam

        runs, tags = self.tables()["runs"], self.tables()["tags"]

        def write():
            with self.store.engine.begin() as conn:
                conn.execute(runs.update().where(runs.c.run_uuid == bindparam("rid")).values(
                    status=bindparam("st"), end_time=bindparam("end")),
                    [{"rid": f.run_id, "st": f.status, "end": f.end_ms} for f in items])
                for f in items:
                    conn.execute(tags.delete().where(tags.c.run_uuid == f.run_id,
                                                     tags.c.key.in_(list(f.tags))))
                conn.execute(tags.insert(), [{"key": k, "value": v, "run_uuid": f.run_id}
                                             for f in items for k, v in f.tags.items()])
        if items:
            retry(write)


def _executemany(conn, table, rows: list[dict]) -> None:
    """One INSERT for many rows, compiled once for the dialect and handed to the driver's
    executemany (SQLAlchemy's per-row parameter processing cost ~2 ms a trial)."""
    columns = list(rows[0])
    compiled = table.insert().compile(dialect=conn.dialect, column_keys=columns)
    if conn.dialect.positional:
        params = [tuple(row[c] for c in compiled.positiontup) for row in rows]
    else:
        params = rows
    conn.exec_driver_sql(str(compiled), params)


def metric_value(value) -> float:
    """A metric point's value: numbers as floats, anything else NaN."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
