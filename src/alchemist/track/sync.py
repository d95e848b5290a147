"""Files → MLflow: one parent run per stage, one child run per trial (with every epoch's
metrics, its files and learning curve). Idempotent: children are keyed by tag
`alchemist.trial_id`, and one whose `alchemist.synced_digest` matches its files is skipped. No
loss under concurrency: synchronous `log_batch` only, a lock file per stage, transient errors
retried with backoff (alchemist.track.backend)."""
from __future__ import annotations

import hashlib
import json
import tempfile
import time
import warnings
from pathlib import Path

from alchemist.analysis import plots
from alchemist.analysis.tables import stage_table
from alchemist.atomic import file_lock
from alchemist.track.backend import connect, default_tracking_uri, retry
from alchemist.track.trial_runs import (DIGEST, KIND, SOURCE, STAGE, SYNC_VERSION, TRIAL, SyncReport,
                                        files_digest, sync_trials)
from alchemist.track.writer import ApiWriter, SqlWriter

DATA_SPLITS = ("train", "val", "train_coarse")  # never "test": only the lockbox opens it (PB-32)
NOT_STAGES = {"data", "test", "plots", "mlartifacts", "lockbox", "logs"}  # test: lockbox only
SERVER_THREADS = 4     # concurrent requests to a tracking server (its DB pool is 15)


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


class _Stage:
    """One stage being synced: the client, the experiment and the stage's parent run."""

    def __init__(self, client, experiment_id: str, stage: str, stage_dir: Path):
        self.client, self.experiment_id, self.stage, self.dir = client, experiment_id, stage, stage_dir
        self.report = SyncReport(stage=stage, experiment_id=experiment_id)
        plans = [_read_json(p) for p in sorted(stage_dir.glob("*plan.json")) + sorted(
            stage_dir.glob("round*/plan.json"))]  # the pipeline writes <stage>/round<k>/plan.json
        self.plan = {t: c for plan in plans for t, c in plan.get("trials", {}).items()}
        self.pack_of = {t: p for plan in plans for p, ts in plan.get("packs", {}).items() for t in ts}
        source = next((plan["source"] for plan in plans if plan.get("source")), None)
        self.previous = stage_dir.parent / source if source else None   # the stage it narrows

    def search(self, filter_string: str) -> list:
        found, token = [], None
        while True:
            page = retry(self.client.search_runs, [self.experiment_id], filter_string,
                         max_results=1000, order_by=["attributes.start_time ASC"], page_token=token)
            found.extend(page)
            if not (token := page.token):
                return found

    def log_batch(self, run_id: str, metrics=(), params=(), tags=()) -> None:
        """Synchronous batches within MLflow's limits (1000 metrics, 100 params/tags a call)."""
        for kind, items, size in (("params", params, 100), ("metrics", metrics, 1000),
                                  ("tags", tags, 100)):
            for i in range(0, len(items), size):
                retry(self.client.log_batch, run_id, synchronous=True, **{kind: items[i:i + size]})

    def parent(self):
        runs = self.search(f"tags.`{KIND}` = 'stage' and tags.`{STAGE}` = '{self.stage}'")
        return runs[0] if runs else retry(self.client.create_run, self.experiment_id,
                                          run_name=self.stage, tags={KIND: "stage", STAGE: self.stage})

    def sync_parent(self, parent, data_dir: Path | None, plots_dir: Path, previous: Path | None,
                    figures: list[Path] | None):
        """Stage table, stage figures (`figures`, else drawn now), stage files and dataset inputs
        on the parent run."""
        import pandas as pd
        from mlflow.entities import Metric

        own_files = sorted(p for p in self.dir.iterdir() if p.is_file() and p.suffix in (
            ".json", ".parquet", ".csv", ".png") and not p.name.startswith((".", "mlflow")))
        h = hashlib.sha256(SYNC_VERSION.encode())
        for td in [t.parent for f in (self.dir, previous) if f for t in f.glob("trials/*/summary.json")]:
            h.update(f"{td}:{files_digest(td)}".encode())
        for path in own_files + ([data_dir / "prep.json"] if data_dir else []):
            h.update(path.name.encode() + (path.read_bytes() if path.exists() else b""))
        digest, run_id = h.hexdigest()[:32], parent.info.run_id
        if parent.data.tags.get(DIGEST) == digest:
            return
        table = stage_table(self.dir)
        now = int(time.time() * 1000)
        if len(table):
            values = pd.to_numeric(table["best_val_metric"], errors="coerce").dropna()
            stage_metrics = {"n_trials": len(table), **{
                f"n_{k}": v for k, v in table["status"].value_counts().items()}}
            if len(values):
                minimise = (table["mode"] == "min").any()
                stage_metrics["best_val_metric"] = values.min() if minimise else values.max()
            self.log_batch(run_id, [Metric(k, float(v), now, len(table))
                                    for k, v in stage_metrics.items()])
            table_path = plots_dir / "stage_table.parquet"
            table.to_parquet(table_path, index=False)
            own_files.append(table_path)
            with warnings.catch_warnings():  # MLflow's select_dtypes warns under pandas 3
                warnings.simplefilter("ignore")
                retry(self.client.log_table, run_id, table[[c for c in table.columns
                                                            if not c.startswith("p.")]],
                      "stage_table.json")
        if figures is None:
            figures = plots.stage_plots(self.dir, plots_dir, previous)
        for path in own_files + [f for f in figures if f not in own_files]:
            retry(self.client.log_artifact, run_id, str(path))
        self.log_inputs(run_id, table, data_dir)
        retry(self.client.set_terminated, run_id, "FINISHED", end_time=now)
        retry(self.client.set_tag, run_id, DIGEST, digest)

    def log_inputs(self, run_id: str, table, data_dir: Path | None) -> None:
        """The prep splits this stage trained on (plus val) as MLflow datasets with digests."""
        if data_dir is None or not (data_dir / "prep.json").exists():
            return
        import mlflow.data
        import pandas as pd
        from mlflow.entities import DatasetInput, InputTag

        splits_meta = _read_json(data_dir / "prep.json").get("splits", {})
        used = {json.loads(p).get("data", "train") for p in table.get("params_json", [])} | {"val"}
        inputs = []
        for split in (s for s in DATA_SPLITS if s in used):  # the test split is never opened here
            if not (path := data_dir / f"{split}.parquet").exists():
                continue
            sha = (splits_meta.get(split, {}).get("file_sha256")
                   or hashlib.sha256(path.read_bytes()).hexdigest())
            with warnings.catch_warnings():  # schema inference hints about integer columns
                warnings.simplefilter("ignore")
                dataset = mlflow.data.from_pandas(pd.read_parquet(path), source=str(path.resolve()),
                                                  targets="_y", name=split, digest=sha[:32])
                entity = dataset._to_mlflow_entity()
            context = "validation" if split == "val" else "training"
            inputs.append(DatasetInput(entity, tags=[InputTag("mlflow.data.context", context)]))
        if inputs:
            retry(self.client.log_inputs, run_id, inputs)


def writer_for(client, experiment_id: str, tracking_uri: str):
    """Bulk rows into an SQLAlchemy store; the client (threaded for a server) otherwise."""
    bulk = None if tracking_uri.startswith(("http://", "https://")) else SqlWriter.for_client(
        client, experiment_id)
    return bulk or ApiWriter(client, experiment_id, SERVER_THREADS if tracking_uri.startswith("http")
                             else 1)


def sync_stage(stage_dir: Path, *, tracking_uri: str, experiment: str, stage: str | None = None,
               data_dir: Path | None = None, plots_dir: Path | None = None,
               figures: list[Path] | None = None, trial_ids: set[str] | None = None,
               connection: tuple | None = None) -> SyncReport:
    """Sync one stage folder: parent run, one child per finished trial of the stage table (every
    trial folder when there is none), stage-level artifacts (`figures`, else drawn now, with the
    narrowing figure against the stage its plan names as `source`)."""
    stage_dir, stage = Path(stage_dir), stage or Path(stage_dir).name
    client, exp_id = connection or connect(tracking_uri, experiment)
    with file_lock(stage_dir / ".mlflow-sync.lock"), tempfile.TemporaryDirectory() as tmp:
        out = Path(plots_dir) / stage if plots_dir else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        st = _Stage(client, exp_id, stage, stage_dir)
        parent = st.parent()
        st.report.parent_run_id = parent.info.run_id
        writer = writer_for(client, exp_id, tracking_uri)
        existing: dict[str, list] = {}
        for run in writer.runs_tagged({KIND: "trial", STAGE: stage}, (TRIAL, DIGEST, SOURCE)):
            existing.setdefault(run.data.tags.get(TRIAL), []).append(run)
        dirs = [stage_dir / "trials" / t for t in _trial_ids(stage_dir)
                if trial_ids is None or t in trial_ids]
        sync_trials(client, writer, st.report, stage,
                    [d for d in dirs if (d / "summary.json").exists()], existing,
                    parent.info.run_id, st.plan, st.pack_of)
        previous = st.previous if st.previous and st.previous.is_dir() else None
        st.sync_parent(parent, Path(data_dir) if data_dir else None, out, previous, figures)
    return st.report


def _trial_ids(stage_dir: Path) -> list[str]:
    """The stage's trials: those of its table (the current plan's), else every trial folder."""
    table = stage_dir / "trials.parquet"
    if table.exists():
        import pyarrow.parquet as pq

        return sorted(pq.read_table(table, columns=["trial_id"]).column(0).to_pylist())
    return sorted(p.parent.name for p in stage_dir.glob("trials/*/summary.json"))


def stage_dirs(results_dir: Path) -> list[Path]:
    """Stage folders under results/: those holding trials, a plan or an LR range test."""
    return [d for d in sorted(Path(results_dir).iterdir())
            if d.is_dir() and d.name not in NOT_STAGES and not d.name.startswith(".")
            and any([*d.glob("*plan.json"), *d.glob("round*/plan.json"), *d.glob("lr_find.parquet"),
                     *d.glob("trials/*/summary.json")])]


def sync_all(results_dir: Path, *, tracking_uri: str | None = None, experiment: str = "alchemist",
             stages: list[str] | None = None, data_dir: Path | None = None,
             plots_dir: Path | None = None) -> list[SyncReport]:
    """Sync every stage folder under results_dir (or only `stages`)."""
    results_dir = Path(results_dir)
    tracking_uri = tracking_uri or default_tracking_uri(results_dir)
    data_dir = data_dir or results_dir / "data"
    reports, connection = [], connect(tracking_uri, experiment)
    for sdir in stage_dirs(results_dir):
        if stages and sdir.name not in stages:
            continue
        reports.append(sync_stage(sdir, tracking_uri=tracking_uri, experiment=experiment,
                                  data_dir=data_dir, plots_dir=plots_dir, connection=connection))
    return reports
