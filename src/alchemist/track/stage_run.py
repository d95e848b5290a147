"""A stage folder as MLflow sees it: what its plans say (trials, packs, the stage it narrows, the
stage's settings, which settings vary), and its parent run — the stage's settings as params, its
best configuration's mean and interval and its counts as metrics, its table, figures and files
as artifacts, the data splits it trained on as dataset inputs, and the stage's wall time."""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

from alchemist.analysis.tables import StagePlans, flatten, stage_table, table_mode
from alchemist.track.backend import retry
from alchemist.track.trial_runs import DIGEST, KIND, STAGE, SYNC_VERSION, files_digest, named

DATA_SPLITS = ("train", "val", "train_coarse")  # never "test": only the lockbox opens it (PB-32)
def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def parent_run(client, experiment_id: str, stage: str, start_ms: int | None, tags: dict):
    """The stage's parent run: the oldest run tagged with this stage, else a new one created with `tags`."""
    runs = retry(client.search_runs, [experiment_id],
                 f"tags.`{KIND}` = 'stage' and tags.`{STAGE}` = '{stage}'", max_results=10,
                 order_by=["attributes.start_time ASC"])
    if runs:
        return runs[0]
    return retry(client.create_run, experiment_id, run_name=stage, start_time=start_ms,
                 tags={KIND: "stage", STAGE: stage, **tags})


def _digest(folder: StagePlans, own_files: list[Path], data_dir: Path | None) -> str:
    h = hashlib.sha256(SYNC_VERSION.encode())
    for d in (folder.dir, folder.previous):
        for td in sorted(d.glob("trials/*/summary.json")) if d else []:
            h.update(f"{td.parent}:{files_digest(td.parent)}".encode())
    for path in own_files + ([data_dir / "prep.json"] if data_dir else []):
        h.update(path.name.encode() + (path.read_bytes() if path.exists() else b""))
    return h.hexdigest()[:32]


def sync_parent(client, parent, folder: StagePlans, data_dir: Path | None, figures: list[Path],
                tmp: Path, end_ms: int) -> None:
    """The stage's parent run, unless its digest says it is up to date."""
    import pandas as pd
    from mlflow.entities import Metric, Param

    own_files = sorted(p for p in folder.dir.iterdir() if p.is_file() and p.suffix in (
        ".json", ".parquet", ".csv", ".png") and not p.name.startswith((".", "mlflow")))
    digest, run_id = _digest(folder, own_files, data_dir), parent.info.run_id
    if parent.data.tags.get(DIGEST) == digest:
        return
    table = stage_table(folder.dir)
    metrics: dict[str, float] = {}
    if len(table):
        metric = str(table["metric"].dropna().iloc[0]) if table["metric"].notna().any() else "metric"
        metrics = {"n_trials": len(table), **{f"n_{k}": v for k, v in table["status"].value_counts().items()}}
        values = pd.to_numeric(table["kept_val_metric"], errors="coerce").dropna()
        minimise = table_mode(table, default="max") == "min"
        if len(values):
            metrics[named("best_trial_val_metric", metric)] = values.min() if minimise else values.max()
        seeds = folder.dir / "seeds.parquet"
        if seeds.exists() and len(board := pd.read_parquet(seeds)):
            best = board.sort_values("mean", ascending=bool(minimise)).iloc[0]
            metrics[named("best_config_val_metric_mean", metric)] = best["mean"]
            if pd.notna(best["ci_half_width"]):
                metrics[named("best_config_val_metric_ci_half_width", metric)] = best["ci_half_width"]
        table_path = tmp / "stage_table.parquet"
        table.to_parquet(table_path, index=False)
        own_files.append(table_path)
        with warnings.catch_warnings():  # MLflow's select_dtypes warns under pandas 3
            warnings.simplefilter("ignore")
            retry(client.log_table, run_id, table[[c for c in table.columns if not c.startswith("p.")]],
                  "stage_table.json")
    params = [Param(k, str(v)[:500]) for k, v in flatten(folder.settings).items()]
    retry(client.log_batch, run_id, metrics=[Metric(k, float(v), end_ms, 0) for k, v in metrics.items()],
          params=params[:100], synchronous=True)
    for path in own_files + [f for f in figures if f not in own_files]:
        retry(client.log_artifact, run_id, str(path))
    log_inputs(client, run_id, table, data_dir)
    retry(client.set_terminated, run_id, "FINISHED", end_time=max(end_ms, parent.info.start_time))
    retry(client.set_tag, run_id, DIGEST, digest)


def log_inputs(client, run_id: str, table, data_dir: Path | None) -> None:
    """The prep splits this stage trained on (plus val) as MLflow datasets with digests."""
    if data_dir is None or not (data_dir / "prep.json").exists():
        return
    import mlflow.data
    import pandas as pd
    from mlflow.entities import DatasetInput, InputTag

    from alchemist.data.split_files import open_member, split_path

    prep = _read_json(data_dir / "prep.json")
    splits_meta = prep.get("splits", {})
    used = {json.loads(p).get("data", "train") for p in table.get("params_json", [])} | {"val"}
    inputs = []
    for split in (s for s in DATA_SPLITS if s in used):  # the test split is never opened here
        if not (path := split_path(data_dir, split, prep)).exists():
            continue
        sha = (splits_meta.get(split, {}).get("file_sha256")
               or hashlib.sha256(path.read_bytes()).hexdigest())
        with warnings.catch_warnings():  # schema inference hints about integer columns
            warnings.simplefilter("ignore")
            if prep.get("format") == "npz":      # an array split: its shape, not its rows, is read
                dataset = mlflow.data.from_numpy(open_member(path, "X"), source=str(path.resolve()),
                                                 targets=open_member(path, "y"), name=split, digest=sha[:32])
            else:
                dataset = mlflow.data.from_pandas(pd.read_parquet(path), source=str(path.resolve()),
                                                  targets="_y", name=split, digest=sha[:32])
            entity = dataset._to_mlflow_entity()
        context = "validation" if split == "val" else "training"
        inputs.append(DatasetInput(entity, tags=[InputTag("mlflow.data.context", context)]))
    if inputs:   # two stages logging the same split at once: MLflow's insert races; a retry links it
        retry(client.log_inputs, run_id, inputs, also=("unique constraint", "integrityerror"))
