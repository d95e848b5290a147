"""Helpers for the tracking tests: fabricate stage/trial folders per docs/architecture.md and run
a real `mlflow server` on 127.0.0.1 (free port, readiness wait, guaranteed teardown)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from alchemist.track.trial_runs import named
from alchemist.trial import make_trial, pack_key

EPOCH_COLUMNS = ["train_loss", "val_loss", "train_metric", "val_metric", "lr", "grad_norm",
                 "update_ratio_min", "update_ratio_median", "update_ratio_max", "epoch_time_s"]
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"}


def make_trial_dir(trials_dir: Path, trial: dict, epochs: int, status: str = "completed") -> Path:
    """config.json, metrics.parquet (one row per epoch) and summary.json of one trial."""
    rng = np.random.default_rng(zlib.crc32(trial["trial_id"].encode()))
    out = trials_dir / trial["trial_id"]
    out.mkdir(parents=True, exist_ok=True)
    e = np.arange(1, epochs + 1)
    df = pd.DataFrame({"epoch": e})
    for col in EPOCH_COLUMNS:
        df[col] = np.exp(-e / 10) + rng.uniform(0, 0.05, epochs)
    df["train_metric"], df["val_metric"] = 1 - df["train_loss"] / 2, 1 - df["val_loss"] / 2
    df["epoch_time_s"] = 0.5
    if status == "diverged":
        df.loc[df.index[-1], ["train_loss", "val_loss"]] = [np.nan, np.inf]
    df.to_parquet(out / "metrics.parquet", index=False)
    (out / "config.json").write_text(json.dumps(trial, sort_keys=True))
    best = int(df["val_metric"].idxmax())
    (out / "summary.json").write_text(json.dumps({
        "trial_id": trial["trial_id"], "status": status, "metric": "accuracy", "mode": "max",
        "kept_epoch": int(df["epoch"][best]), "kept_val_metric": float(df["val_metric"][best]),
        "kept_val_loss": float(df["val_loss"].min()), "final_val_metric": float(df["val_metric"].iloc[-1]),
        "final_val_loss": None if status == "diverged" else float(df["val_loss"].iloc[-1]),
        "epochs_run": epochs, "diverged_epoch": epochs if status == "diverged" else None,
        "wall_time_s": 0.5 * epochs, "diagnosis": {"label": "ok", "next_step": "none"}}))
    return out


def make_stage(results: Path, stage: str, n_trials: int, epochs: int = 20, seeds: int = 1,
               data: str = "train_coarse", statuses: tuple = ("completed",),
               source: str | None = None) -> list[str]:
    """A stage folder with round1/plan.json and n_trials finished trials (lr, dropout, hidden vary);
    `source`: the stage it narrows (the plan's `source`, config `from:`)."""
    rng = np.random.default_rng(zlib.crc32(stage.encode()))
    trials = {}
    for i in range(n_trials):
        if i % seeds == 0:  # a new configuration; the next `seeds - 1` trials repeat it
            overrides = {"lr": float(10 ** rng.uniform(-4, -1)), "hidden": [int(rng.choice([16, 32, 64]))],
                         "dropout": round(float(rng.uniform(0, .5)), 3)}
        overrides["seed"] = i % seeds
        t = make_trial({"epochs": epochs}, overrides, stage=stage, data=data)
        trials[t["trial_id"]] = t
        make_trial_dir(results / stage / "trials", t, epochs, statuses[i % len(statuses)])
    packs: dict = {}
    for tid, t in trials.items():
        packs.setdefault(pack_key(t), []).append(tid)
    packs = {f"{key}{i}": tids for i, (key, tids) in enumerate(packs.items())}  # ids of plan.py's shape
    (results / stage / "round1").mkdir(parents=True, exist_ok=True)  # the pipeline's layout
    (results / stage / "round1" / "plan.json").write_text(json.dumps(
        {"stage": stage, "source": source, "trials": trials, "packs": packs}))
    return list(trials)


def make_prep(data_dir: Path) -> None:
    """train/val/train_coarse splits and prep.json; test.parquet is garbage so opening it fails."""
    data_dir.mkdir(parents=True, exist_ok=True)
    splits = {}
    for name, rows in (("train", 40), ("val", 10), ("train_coarse", 20)):
        df = pd.DataFrame({"_row_id": np.arange(rows), "x0": np.zeros(rows, "float32"),
                           "_y": np.arange(rows) % 2})
        df.to_parquet(data_dir / f"{name}.parquet", index=False)
        splits[name] = {"rows": rows, "file_sha256": hashlib.sha256(
            (data_dir / f"{name}.parquet").read_bytes()).hexdigest()}
    (data_dir / "test.parquet").write_bytes(b"the lockbox only")
    (data_dir / "prep.json").write_text(json.dumps({"task": "binary", "splits": splits}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return port if port != 5060 else free_port()  # Chromium refuses 5060 (ERR_UNSAFE_PORT)


@contextlib.contextmanager
def mlflow_server(store: Path, artifacts: Path, workers: int = 2, timeout: float = 180.0):
    """Yield the URI of a running `mlflow server`; always stopped (whole process group)."""
    port = free_port()
    log = open(store.parent / f"mlflow-server-{port}.log", "w")
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{store}",
           "--artifacts-destination", str(artifacts), "--host", "127.0.0.1",
           "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=ENV,
                            start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited {proc.returncode}: "
                                   + Path(log.name).read_text()[-2000:])
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(uri + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            if time.monotonic() > deadline:
                raise TimeoutError(f"mlflow server not ready after {timeout} s")
            time.sleep(0.3)
        yield uri
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)  # uvicorn may wait on idle keep-alive connections: then kill
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # and any worker left behind in the group
        proc.wait()
        log.close()


def alchemist(*args: str, **popen) -> subprocess.Popen:
    """Start `python -m alchemist ...` (one real process, as a pipeline rule would)."""
    return subprocess.Popen([sys.executable, "-m", "alchemist", *args], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def run_counts(uri: str, experiment: str = "alchemist") -> dict:
    """{trial_id: {metric key: number of points}} and parents, read back through the client."""
    from mlflow import MlflowClient
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    out = {"parents": {}, "trials": {}, "runs": runs}
    for r in runs:
        tags = r.data.tags
        if tags.get("alchemist.kind") == "stage":
            out["parents"][tags["alchemist.stage"]] = r.info.run_id
        elif tags.get("alchemist.kind") == "trial":
            out["trials"][tags["alchemist.trial_id"]] = {     # logged under the metric's name
                k: len(client.get_metric_history(r.info.run_id, named(k, "accuracy"))) for k in EPOCH_COLUMNS}
    return out


CHROMIUM = "/usr/bin/chromium"
REPO_RESULTS = Path(__file__).resolve().parents[1] / "results"  # the UI screenshot lands here


def chromium(url: str, user_data_dir: Path, *extra: str, timeout: float = 180) -> str:
    """Run headless Chromium on url (flags of the issue); return the dumped DOM or ''."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--no-first-run", f"--user-data-dir={user_data_dir}",
           "--virtual-time-budget=15000", *extra, url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def run_at_once(arg_lists: list[list[str]], timeout: float = 900) -> tuple[str, list]:
    """Start every `alchemist ...` at once; wait for all. Returns (timing text, [(rc, out, err)])."""
    start, before = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = [alchemist(*args) for args in arg_lists]
    outputs = [p.communicate(timeout=timeout) for p in procs]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    timing = (f"{time.monotonic() - start:.1f} s wall, {cpu:.0f} CPU-s "
              f"({cpu / len(procs):.1f} per process, load avg {os.getloadavg()[0]:.1f})")
    return timing, [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs)]


def assert_complete(uri: str, experiment: str, ids: dict[str, list[str]], epochs: int) -> int:
    """One parent per stage, one child per trial under it, every epoch of every metric."""
    counts = run_counts(uri, experiment)
    kinds = [r.data.tags.get("alchemist.kind") for r in counts["runs"]]
    assert kinds.count("stage") == len(ids) and set(counts["parents"]) == set(ids)
    assert kinds.count("trial") == sum(map(len, ids.values()))
    for run in counts["runs"]:
        tags = run.data.tags
        if tags["alchemist.kind"] == "trial":
            assert tags["mlflow.parentRunId"] == counts["parents"][tags["alchemist.stage"]]
            assert counts["trials"][tags["alchemist.trial_id"]] == {k: epochs for k in EPOCH_COLUMNS}
    return sum(sum(c.values()) for c in counts["trials"].values())
