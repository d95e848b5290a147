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
    h = hashlib.sha256(winner_file.read_bytes() + model_name.encode() + b"raw-input pyfunc")
    for d in trial_dirs:
        h.update((d / "model.pt").read_bytes())
    return h.hexdigest()[:32]


def sync_selection(client, experiment_id: str, tracking_uri: str, winner_file: Path,
                   trial_dirs: list[Path], model, example, output, model_name: str,
                   source_tags: dict[str, str], raw=None, prep_file: Path | None = None) -> str:
    """The select run (see the module docstring); `model` is the winner as a module (batch →
    outputs), `example` a few encoded input rows and `output` its outputs on them (numpy); `raw`
    the same rows as the user holds them (tables; None for arrays) and `prep_file` prep.json.
    Returns the run id."""
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
        # the network alone (encoded inputs), and the registered pyfunc that takes the user's raw
        # rows, image files or arrays (alchemist.track.winner_pyfunc)
        retry(mlflow.pytorch.log_model, model, name="network", signature=infer_signature(example, output),
              input_example=example, pip_requirements=_requirements(), code_paths=[str(PACKAGE_DIR)],
              registered_model_name=None if raw is not None else model_name, serialization_format="pickle")
        if raw is not None:
            _log_pyfunc(raw, prep_file, trial_dirs, model_name)
    retry(client.set_tag, run.info.run_id, DIGEST, digest)
    _describe(client, model_name, run.info.run_id, selection, metric, source_tags)
    return run.info.run_id


def _log_pyfunc(raw, prep_file: Path, trial_dirs: list[Path], model_name: str) -> None:
    import tempfile

    import mlflow.pyfunc
    from mlflow.models import infer_signature

    from alchemist.track.winner_pyfunc import WinnerPyfunc, stage_artifacts
    from alchemist.train.winner_predictor import Predictor

    predictor = Predictor(json.loads(Path(prep_file).read_text()), trial_dirs)
    example_out = predictor.outputs(predictor.arrays(raw)) if hasattr(raw, "dtype") else predictor.frame(raw)
    with tempfile.TemporaryDirectory() as tmp:
        retry(mlflow.pyfunc.log_model, name="winner", python_model=WinnerPyfunc(),
              artifacts=stage_artifacts(Path(prep_file), trial_dirs, Path(tmp)),
              signature=infer_signature(raw, example_out), input_example=raw,
              pip_requirements=_requirements(pyfunc=True), code_paths=[str(PACKAGE_DIR)],
              registered_model_name=model_name)


def _describe(client, model_name: str, run_id: str, selection: dict, metric: str, tags: dict) -> None:
    """The registered version of this run: a description (what it is, its validation mean ±
    CI), tags (metric, data and code version) and the alias `champion`."""
    versions = retry(client.search_model_versions, f"name='{model_name}' and run_id='{run_id}'")
    if not versions:
        return
    w, version = selection["winner"], max(versions, key=lambda v: int(v.version)).version
    ci = f" ± {w['ci_half_width']:.4f} ({selection.get('confidence', 0.95):.0%} CI)" if w.get("ci_half_width") else ""
    what = f"the average of its {w['n']} seeds" if w.get("n", 1) > 1 else "one seed"
    text = (f"alchemist winner {w['config_id']} ({what}): {metric} {w['mean']:.4f}{ci} on validation. "
            "Takes the source's raw columns as a DataFrame (prep is applied inside); returns "
            "`prediction` in the target's own type and `p_<class>` probabilities.")
    retry(client.update_model_version, model_name, version, description=text)
    retry(client.update_registered_model, model_name, description="The selected configuration of the "
          "alchemist search; the alias `champion` marks the current winner.")
    for key, value in {"alchemist.metric": metric, f"{metric}_mean": f"{w['mean']:.6g}",
                       "alchemist.winner_config_id": w["config_id"], **tags}.items():
        retry(client.set_model_version_tag, model_name, version, key, str(value))
    retry(client.set_registered_model_alias, model_name, "champion", version)


def _requirements(pyfunc: bool = False) -> list[str]:
    """What loading a logged model needs (pinned to what logged it; no slow inference); the
    raw-input pyfunc also applies prep (pandas, pyarrow, scikit-learn's metrics)."""
    from importlib.metadata import version

    names = ["torch", "numpy"] + (["pandas", "pyarrow", "scikit-learn"] if pyfunc else [])
    return [f"{n}=={version(n).split('+')[0]}" for n in names]


def record_test(client, experiment_id: str, stage: str, model_name: str, result: dict, opening: int) -> int:
    """The lockbox's result where people look: `test_<metric>_mean` / `_ci_low` / `_ci_high` and
    `val_to_test_gap` on the select stage's run, and as tags (plus a sentence in the description)
    on the model versions that run registered. Returns how many runs were updated."""
    from mlflow.entities import Metric

    m = str(result["metric"]).removeprefix("val_")
    ci = result.get("test_ci") or [None, None]
    values = {f"test_{m}_mean": result["test_mean"], f"test_{m}_ci_low": ci[0], f"test_{m}_ci_high": ci[1],
              "val_to_test_gap": result.get("val_to_test_gap"), "lockbox_opening": opening}
    runs = retry(client.search_runs, [experiment_id],
                 f"tags.`{KIND}` = 'select' and tags.`{STAGE}` = '{stage}'", max_results=50)
    half = f" ± {(ci[1] - ci[0]) / 2:.4f}" if ci[0] is not None else ""
    sentence = (f" Test set (lockbox opening #{opening}): {m} {result['test_mean']:.4f}{half}, "
                f"val→test gap {result.get('val_to_test_gap', 0):+.4f}.")
    for run in runs:
        retry(client.log_batch, run.info.run_id, synchronous=True,
              metrics=[Metric(k, float(v), 0, 0) for k, v in values.items() if v is not None])
        for v in retry(client.search_model_versions, f"name='{model_name}' and run_id='{run.info.run_id}'"):
            for key, value in values.items():
                if value is not None:
                    retry(client.set_model_version_tag, model_name, v.version, key, f"{value:.6g}")
            if "Test set (lockbox" not in (v.description or ""):
                retry(client.update_model_version, model_name, v.version,
                      description=(v.description or "") + sentence)
    return len(runs)
