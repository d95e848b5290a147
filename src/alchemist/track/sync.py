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
from dataclasses import dataclass, field
from pathlib import Path

from alchemist.analysis import plots
from alchemist.analysis.tables import flatten, stage_table
from alchemist.atomic import file_lock
from alchemist.track.backend import connect, default_tracking_uri, retry
from alchemist.trial import canonical_json, pack_key

SYNC_VERSION = "1"
KIND, STAGE, TRIAL, DIGEST, SOURCE = ("alchemist.kind", "alchemist.stage", "alchemist.trial_id",
                                      "alchemist.synced_digest", "alchemist.source_digest")
TRIAL_FILES = ("summary.json", "config.json", "metrics.parquet")
SUMMARY_METRICS = ("best_val_metric", "best_val_loss", "final_val_metric", "final_val_loss",
                   "best_epoch", "epochs_run", "wall_time_s")
DATA_SPLITS = ("train", "val", "train_coarse")  # never "test": only the lockbox opens it (PB-32)
NOT_STAGES = {"data", "test", "plots", "mlartifacts", "lockbox", "logs"}  # test: lockbox only


@dataclass
class SyncReport:
    """What one stage sync did: runs created / resumed / skipped (unchanged) / replaced."""
    stage: str
    experiment_id: str = ""
    parent_run_id: str = ""
    created: int = 0
    resumed: int = 0
    skipped: int = 0
    replaced: int = 0
    points: int = 0
    runs: dict[str, str] = field(default_factory=dict)  # trial_id -> run_id


def files_digest(trial_dir: Path) -> str:
    h = hashlib.sha256(SYNC_VERSION.encode())
    for path in (trial_dir / name for name in TRIAL_FILES):
        h.update(path.name.encode() + (path.read_bytes() if path.exists() else b"<absent>"))
    return h.hexdigest()[:32]


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

    def sync_trial(self, trial_dir: Path, runs: list, parent_id: str, curves_dir: Path) -> None:
        import pandas as pd
        from mlflow.entities import Metric, Param, RunTag

        summary = json.loads((trial_dir / "summary.json").read_text())
        tid, digest = summary.get("trial_id", trial_dir.name), files_digest(trial_dir)
        cfg_path, metrics_path = trial_dir / "config.json", trial_dir / "metrics.parquet"
        config = json.loads(cfg_path.read_text()) if cfg_path.exists() else self.plan.get(tid, {})
        keep = next((r for r in runs if r.data.tags.get(DIGEST) == digest), None)
        keep = keep or next((r for r in runs if r.data.tags.get(SOURCE) == digest), None)
        for stale in (r for r in runs if r is not keep):  # older files' runs, or racing duplicates
            retry(self.client.delete_run, stale.info.run_id)
            self.report.replaced += 1
        if keep is not None and keep.data.tags.get(DIGEST) == digest:
            self.report.skipped, self.report.runs[tid] = self.report.skipped + 1, keep.info.run_id
            return
        done_ms = int((trial_dir / "summary.json").stat().st_mtime * 1000)
        if keep is None:
            start_ms = done_ms - int(1000 * float(summary.get("wall_time_s") or 0))
            keep = retry(self.client.create_run, self.experiment_id, start_time=start_ms, run_name=tid,
                         tags={KIND: "trial", STAGE: self.stage, TRIAL: tid, SOURCE: digest,
                               "mlflow.parentRunId": parent_id})
            self.report.created += 1
        else:
            self.report.resumed += 1
        run_id, start_ms = keep.info.run_id, keep.info.start_time
        df = pd.read_parquet(metrics_path) if metrics_path.exists() else pd.DataFrame({"epoch": []})
        elapsed = (df["epoch_time_s"].fillna(0).cumsum() if "epoch_time_s" in df else df["epoch"])
        stamps = [start_ms + int(1000 * s) for s in elapsed]  # same files → same points
        metrics = [Metric(col, float(v), ts, int(ep)) for col in df.select_dtypes("number").columns
                   if col != "epoch" for v, ts, ep in zip(df[col], stamps, df["epoch"])]
        metrics += [Metric(k, float(summary[k]), done_ms, 0) for k in SUMMARY_METRICS
                    if isinstance(summary.get(k), (int, float)) and not isinstance(summary[k], bool)]
        params = [Param(k, v if isinstance(v, str) else canonical_json(v))
                  for k, v in flatten(config).items()]
        diagnosis = summary.get("diagnosis") or {}
        tags = {"status": summary.get("status"), "mode": summary.get("mode"),
                "metric": summary.get("metric"), "pack_id": self.pack_of.get(tid) or pack_key(config),
                "diagnosis": diagnosis.get("label"), "next_step": diagnosis.get("next_step")}
        self.log_batch(run_id, metrics, params,
                       [RunTag(f"alchemist.{k}", str(v)) for k, v in tags.items() if v is not None])
        files = [trial_dir / name for name in TRIAL_FILES if (trial_dir / name).exists()]
        if len(df):
            files.append(plots.trial_curve(trial_dir, curves_dir / tid / "learning_curve.png"))
        for path in files:
            retry(self.client.log_artifact, run_id, str(path))
        status = "FAILED" if summary.get("status") == "failed" else "FINISHED"
        retry(self.client.set_terminated, run_id, status, end_time=max(done_ms, start_ms))
        retry(self.client.set_tag, run_id, DIGEST, digest)  # last: marks the run complete
        self.report.points, self.report.runs[tid] = self.report.points + len(metrics), run_id

    def sync_parent(self, parent, data_dir: Path | None, plots_dir: Path, previous: Path | None):
        """Stage table, stage plots, stage files and dataset inputs on the parent run."""
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
        for path in own_files + plots.stage_plots(self.dir, plots_dir, previous):
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


def sync_stage(stage_dir: Path, *, tracking_uri: str, experiment: str, stage: str | None = None,
               data_dir: Path | None = None, plots_dir: Path | None = None,
               trial_ids: set[str] | None = None, connection: tuple | None = None) -> SyncReport:
    """Sync one stage folder: parent run, one child per finished trial, stage-level artifacts
    (the narrowing figure against the stage its plan names as `source`)."""
    stage_dir, stage = Path(stage_dir), stage or Path(stage_dir).name
    client, exp_id = connection or connect(tracking_uri, experiment)
    with file_lock(stage_dir / ".mlflow-sync.lock"), tempfile.TemporaryDirectory() as tmp:
        out = Path(plots_dir) / stage if plots_dir else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        st = _Stage(client, exp_id, stage, stage_dir)
        parent = st.parent()
        st.report.parent_run_id = parent.info.run_id
        existing: dict[str, list] = {}
        for run in st.search(f"tags.`{KIND}` = 'trial' and tags.`{STAGE}` = '{stage}'"):
            existing.setdefault(run.data.tags.get(TRIAL), []).append(run)
        for tdir in sorted(p.parent for p in stage_dir.glob("trials/*/summary.json")):
            if trial_ids is None or tdir.name in trial_ids:
                st.sync_trial(tdir, existing.get(tdir.name, []), parent.info.run_id, out / "curves")
        previous = st.previous if st.previous and st.previous.is_dir() else None
        st.sync_parent(parent, Path(data_dir) if data_dir else None, out, previous)
    return st.report


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
