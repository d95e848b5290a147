"""The selection in MLflow: one run per select stage holding the winner — its configuration id,
settings and runner-up as tags and params, its mean and confidence interval over seeds as metrics
under the metric's name, winner.json and the leaderboard as artifacts, and every seed's model
as one model (their outputs averaged: what `alchemist predict` uses) logged with mlflow.pytorch
(signature, input example) and registered under a model name.
Idempotent: the run carries the digest of winner.json and the models' files; a run with the same
digest is kept, an older one replaced."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from alchemist.track.backend import retry
from alchemist.track.trial_runs import DIGEST, KIND, STAGE

PACKAGE_DIR = Path(__file__).resolve().parents[1]      # shipped with each model (code_paths)


def _digest(winner_file: Path, trial_dirs: list[Path], model_name: str) -> str:
    h = hashlib.sha256(winner_file.read_bytes() + model_name.encode())
    for d in trial_dirs:
        h.update((d / "model.pt").read_bytes())
    return h.hexdigest()[:32]


def sync_selection(client, experiment_id: str, tracking_uri: str, winner_file: Path,
                   trial_dirs: list[Path], model, example, output, model_name: str,
                   source_tags: dict[str, str]) -> str:
    """The select run (see the module docstring); `model` is the winner as a module (batch →
    outputs), `example` a few input rows and `output` its outputs on them (numpy). Returns the
    run id."""
    import mlflow
    import mlflow.pytorch
    from mlflow.entities import Metric, Param
    from mlflow.models import infer_signature

    selection = json.loads(Path(winner_file).read_text())
    stage, w, r = Path(winner_file).parent.name, selection["winner"], selection.get("runner_up")
    digest = _digest(Path(winner_file), trial_dirs, model_name)
    old = retry(client.search_runs, [experiment_id],
                f"tags.`{KIND}` = 'select' and tags.`{STAGE}` = '{stage}'", max_results=50)
    keep = next((run for run in old if run.data.tags.get(DIGEST) == digest), None)
    for run in (run for run in old if run is not keep):
        retry(client.delete_run, run.info.run_id)
    if keep is not None:
        return keep.info.run_id
    metric = selection.get("metric", "val_metric")
    tags = {KIND: "select", STAGE: stage, **source_tags, "alchemist.metric": metric,
            "alchemist.winner_config_id": w["config_id"], "alchemist.source": selection.get("source") or "",
            "alchemist.winner_trial_ids": ",".join(w["trial_ids"]),
            "alchemist.within_noise": str(selection.get("within_noise"))}
    if r:
        tags["alchemist.runner_up_config_id"] = r["config_id"]
    run = retry(client.create_run, experiment_id, run_name=f"{stage}: winner {w['config_id']}", tags=tags)
    values = {f"{metric}_mean": w["mean"], f"{metric}_std": w.get("std"), "n_seeds": w["n"],
              f"{metric}_ci_low": (w.get("ci") or [None])[0], f"{metric}_ci_high": (w.get("ci") or [None, None])[1],
              f"{metric}_ci_half_width": w.get("ci_half_width"),
              f"runner_up_{metric}_mean": r["mean"] if r else None}
    params = [Param(k, json.dumps(v) if not isinstance(v, str) else v)
              for k, v in sorted(w.get("params", {}).items())][:90]
    params.append(Param("confidence", str(selection.get("confidence"))))
    retry(client.log_batch, run.info.run_id, synchronous=True, params=params,
          metrics=[Metric(k, float(v), 0, 0) for k, v in values.items() if v is not None])
    for path in (Path(winner_file), Path(winner_file).parent.parent / (selection.get("source") or "")
                 / "leaderboard.csv"):
        if path.is_file():
            retry(client.log_artifact, run.info.run_id, str(path))
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(run_id=run.info.run_id):
        retry(mlflow.pytorch.log_model, model, name="winner", signature=infer_signature(example, output),
              input_example=example, pip_requirements=_requirements(), code_paths=[str(PACKAGE_DIR)],
              registered_model_name=model_name, serialization_format="pickle")
    retry(client.set_tag, run.info.run_id, DIGEST, digest)
    return run.info.run_id


def _requirements() -> list[str]:
    """What loading a logged model needs (pinned to what logged it; no slow inference)."""
    from importlib.metadata import version

    return [f"torch=={version('torch').split('+')[0]}", f"numpy=={version('numpy')}"]
