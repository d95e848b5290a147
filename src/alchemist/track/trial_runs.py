"""A stage's trials as MLflow child runs: one per trial folder, named by stage, index and the
settings that vary in the stage; params are those settings plus the key ones (the full config is
the config.json artifact); every epoch's metrics under their names (val_accuracy, val_rmse, ...);
status, diagnosis, configuration, trial and pack ids and the code's git commit as tags.

Idempotent: a run is keyed by tag `alchemist.trial_id`; it is complete once it carries
`alchemist.synced_digest` = the digest of the trial's files (written last). A complete run with
the current digest is skipped; one created for these files but not completed (the process died)
is completed; runs of older files, or racing duplicates, are deleted and a new run is written.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from alchemist.analysis.stats import config_id, family_id
from alchemist.analysis.tables import flatten
from alchemist.track.backend import retry
from alchemist.track.writer import PARENT, Finish, RunSpec, log_files, metric_value
from alchemist.trial import canonical_json, pack_key

SYNC_VERSION = "3"
KIND, STAGE, TRIAL, DIGEST, SOURCE = ("alchemist.kind", "alchemist.stage", "alchemist.trial_id",
                                      "alchemist.synced_digest", "alchemist.source_digest")
TRIAL_FILES = ("summary.json", "config.json", "metrics.parquet")
SUMMARY_METRICS = ("kept_val_metric", "kept_val_loss", "peak_val_metric", "final_val_metric", "final_val_loss",
                   "kept_epoch", "epochs_run", "wall_time_s")
BATCH = 500      # trials per create/finish transaction
#: params every trial run carries besides the settings its stage varies
KEY_PARAMS = ("model", "hidden", "activation", "optimizer", "lr", "weight_decay", "dropout",
              "batch_size", "epochs", "schedule", "seed")


def named(key: str, metric: str) -> str:
    """A column or summary key under its metric's name: val_metric → val_accuracy (or val_rmse)."""
    return key.replace("metric", metric) if metric and metric != "metric" else key


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
    """A 32-hex digest of the trial's summary.json, config.json and metrics.parquet (absent ones count)."""
    h = hashlib.sha256(SYNC_VERSION.encode())
    for path in (trial_dir / name for name in TRIAL_FILES):
        h.update(path.name.encode() + (path.read_bytes() if path.exists() else b"<absent>"))
    return h.hexdigest()[:32]


def epoch_points(metrics_path: Path, start_ms: int, metric: str = "metric"
                 ) -> list[tuple[str, float, int, int]]:
    """(key, value, timestamp, step) of every numeric column of metrics.parquet per epoch; the
    timestamps add up the epochs' wall times from the run's start (same files, same points)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not metrics_path.exists():
        return []
    table = pq.read_table(metrics_path)
    cols = table.to_pydict()
    epochs, times = cols["epoch"], cols.get("epoch_time_s")
    if times is None:
        stamps = [start_ms + int(1000 * e) for e in epochs]
    else:
        stamps, elapsed = [], 0.0
        for t in times:
            elapsed += t if t is not None and t == t else 0.0          # NaN/None count as 0
            stamps.append(start_ms + int(1000 * elapsed))
    numeric = [f.name for f in table.schema if f.name != "epoch"
               and (pa.types.is_floating(f.type) or pa.types.is_integer(f.type))]
    # val_metric is also a named column (val_accuracy, …) in newer files: log it once
    numeric = [k for k in numeric if k == named(k, metric) or named(k, metric) not in cols]
    return [(named(key, metric), metric_value(v), ts, int(ep)) for key in numeric
            for v, ts, ep in zip(cols[key], stamps, epochs)]


def trial_spec(trial_dir: Path, stage: str, parent_id: str, digest: str, config: dict,
               folder, source_tags: dict[str, str]) -> tuple[RunSpec, Finish]:
    """The run of one trial folder (without its id) and how it finishes; `folder` is the
    stage's StagePlans (run names, varied settings, packs)."""
    summary = json.loads((trial_dir / "summary.json").read_text())
    tid, metric = summary.get("trial_id", trial_dir.name), summary.get("metric") or "metric"
    done_ms = int((trial_dir / "summary.json").stat().st_mtime * 1000)
    start_ms = done_ms - int(1000 * float(summary.get("wall_time_s") or 0))
    points = epoch_points(trial_dir / "metrics.parquet", start_ms, metric)
    points += [(named(k, metric), float(summary[k]), done_ms, 0) for k in SUMMARY_METRICS
               if isinstance(summary.get(k), (int, float)) and not isinstance(summary[k], bool)]
    points += [(f"kept_{k}", float(v), done_ms, 0) for k, v in
               (summary.get("kept_epoch_metrics") or {}).items()
               if isinstance(v, (int, float)) and f"kept_{k}" != named("kept_val_metric", metric)]
    diagnosis = summary.get("diagnosis") or {}
    tags = {KIND: "trial", STAGE: stage, TRIAL: tid, SOURCE: digest, PARENT: parent_id, **source_tags}
    tags.update({f"alchemist.{k}": str(v) for k, v in {
        "status": summary.get("status"), "mode": summary.get("mode"), "metric": f"val_{metric}",
        "config_id": config_id(config) if config else None,
        "family_id": family_id(config) if config else None,
        "pack_id": folder.pack_of.get(tid) or pack_key(config), "diagnosis": diagnosis.get("label"),
        "next_step": diagnosis.get("next_step")}.items() if v is not None})
    flat = flatten(config)
    shown = [k for k in (*KEY_PARAMS, *folder.varied) if k in flat]
    params = {k: flat[k] if isinstance(flat[k], str) else canonical_json(flat[k]) for k in dict.fromkeys(shown)}
    status = "FAILED" if summary.get("status") == "failed" else "FINISHED"
    return (RunSpec(name=folder.run_name(stage, tid, config), start_ms=start_ms, tags=tags,
                    params=params, metrics=points),
            Finish("", status, max(done_ms, start_ms), {DIGEST: digest}))


def sync_trials(client, writer, report: SyncReport, stage: str, trial_dirs: list[Path],
                existing: dict[str, list], parent_id: str, folder, source_tags: dict) -> None:
    """Bring every trial folder's run up to date (see the module docstring)."""
    todo: list[tuple[Path, str, object]] = []          # (folder, digest, run to complete or None)
    for tdir in trial_dirs:
        digest, runs = files_digest(tdir), existing.get(tdir.name, [])
        keep = next((r for r in runs if r.data.tags.get(DIGEST) == digest), None)
        keep = keep or next((r for r in runs if r.data.tags.get(SOURCE) == digest), None)
        for stale in (r for r in runs if r is not keep):
            retry(client.delete_run, stale.info.run_id)
            report.replaced += 1
        if keep is not None and keep.data.tags.get(DIGEST) == digest:
            report.skipped += 1
            report.runs[tdir.name] = keep.info.run_id
        else:
            todo.append((tdir, digest, keep))
    for i in range(0, len(todo), BATCH):
        _write(client, writer, report, stage, todo[i:i + BATCH], parent_id, folder, source_tags)


def _write(client, writer, report, stage, batch, parent_id, folder, source_tags) -> None:
    specs, finishes, uris = [], [], []
    for tdir, digest, _ in batch:
        cfg_path = tdir / "config.json"
        config = json.loads(cfg_path.read_text()) if cfg_path.exists() else folder.plan.get(tdir.name, {})
        spec, fin = trial_spec(tdir, stage, parent_id, digest, config, folder, source_tags)
        specs.append(spec)
        finishes.append(fin)
    new = [i for i, (_, _, keep) in enumerate(batch) if keep is None]
    for i, (run_id, uri) in zip(new, writer.create([specs[i] for i in new])):
        finishes[i].run_id, report.created = run_id, report.created + 1
        uris.append((i, uri))
    for i, (_, _, keep) in enumerate(batch):
        if keep is not None:                               # created, never completed: complete it
            writer.fill(keep.info.run_id, specs[i])
            finishes[i].run_id, report.resumed = keep.info.run_id, report.resumed + 1
            uris.append((i, keep.info.artifact_uri))
    for i, uri in uris:
        tdir = batch[i][0]
        log_files(uri, [tdir / n for n in TRIAL_FILES if (tdir / n).exists()],
                  client.tracking_uri)
    writer.finish(finishes)
    for (tdir, _, _), spec, fin in zip(batch, specs, finishes):
        report.points += len(spec.metrics)
        report.runs[tdir.name] = fin.run_id
