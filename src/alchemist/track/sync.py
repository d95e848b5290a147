"""Files → MLflow: one parent run per stage, one child run per trial (with every epoch's
metrics, its files and learning curve). Idempotent: children are keyed by tag
`alchemist.trial_id`, and one whose `alchemist.synced_digest` matches its files is skipped. No
loss under concurrency: synchronous `log_batch` only, a lock file per stage, transient errors
retried with backoff (alchemist.track.backend)."""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from alchemist.atomic import file_lock
from alchemist.provenance import source_tags
from alchemist.results_layout import ResultsLayout
from alchemist.track.backend import connect, default_tracking_uri
from alchemist.analysis.tables import StagePlans
from alchemist.track.stage_run import parent_run, sync_parent
from alchemist.track.trial_runs import (DIGEST, KIND, SOURCE, STAGE, TRIAL, SyncReport,
                                        sync_trials)
from alchemist.track.writer import ApiWriter, SqlWriter

NOT_STAGES = {"data", "test", "plots", "mlartifacts", "lockbox", "logs"}  # test: lockbox only
SERVER_THREADS = 4     # concurrent requests to a tracking server (its DB pool is 15)


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
    trial folder when there is none), stage-level artifacts (`figures`, else drawn now — the
    stage's figures, alchemist.report.figures — unless only some `trial_ids` are synced: their
    stage's figures are a whole-stage sync's or `publish`'s)."""
    stage_dir, stage = Path(stage_dir), stage or Path(stage_dir).name
    client, exp_id = connection or connect(tracking_uri, experiment)
    with file_lock(stage_dir / ".mlflow-sync.lock"), tempfile.TemporaryDirectory() as tmp:
        out = Path(plots_dir) / stage if plots_dir else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        folder, report = StagePlans(stage_dir), SyncReport(stage=stage, experiment_id=exp_id)
        dirs = [stage_dir / "trials" / t for t in _trial_ids(stage_dir)
                if (trial_ids is None or t in trial_ids) and (stage_dir / "trials" / t / "summary.json").exists()]
        start_ms, end_ms = _span(dirs)
        tags = source_tags(stage_dir)
        parent = parent_run(client, exp_id, stage, start_ms, tags)
        report.parent_run_id = parent.info.run_id
        writer = writer_for(client, exp_id, tracking_uri)
        existing: dict[str, list] = {}
        for run in writer.runs_tagged({KIND: "trial", STAGE: stage}, (TRIAL, DIGEST, SOURCE)):
            existing.setdefault(run.data.tags.get(TRIAL), []).append(run)
        sync_trials(client, writer, report, stage, dirs, existing, parent.info.run_id, folder, tags)
        previous = folder.previous if folder.previous and folder.previous.is_dir() else None
        if figures is None and trial_ids is None:
            from alchemist.report.figures import stage_figures

            figures = stage_figures(stage_dir, out, previous)
        sync_parent(client, parent, folder, Path(data_dir) if data_dir else None, figures or [], Path(tmp),
                    end_ms)
    return report


def _span(trial_dirs: list[Path]) -> tuple[int | None, int]:
    """(first start, last end) of the trials, in ms: the stage run's wall time."""
    ends = [int(d.joinpath("summary.json").stat().st_mtime * 1000) for d in trial_dirs]
    walls = [float(json.loads(d.joinpath("summary.json").read_text()).get("wall_time_s") or 0)
             for d in trial_dirs]
    if not ends:
        return None, int(time.time() * 1000)
    return min(e - int(1000 * w) for e, w in zip(ends, walls)), max(ends)


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
    data_dir = data_dir or ResultsLayout(results_dir).data
    reports, connection = [], connect(tracking_uri, experiment)
    for sdir in stage_dirs(results_dir):
        if stages and sdir.name not in stages:
            continue
        reports.append(sync_stage(sdir, tracking_uri=tracking_uri, experiment=experiment,
                                  data_dir=data_dir, plots_dir=plots_dir, connection=connection))
    return reports
