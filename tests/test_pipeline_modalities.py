"""Beyond tables, each end to end — prep → coarse → fine → repeat → select → MLflow → lockbox —
in one `snakemake final_test …` per source: the built-in image set (synthetic:shapes) with the
ResNet-style CNN and augmentation (shifts, flips, rotations), prep normalising per channel with
train statistics; token sequences (synthetic:sequences) with the embedding + LSTM, never
normalised; a folder of PNG files (one subfolder per class) written here; and a user's Dataset
callable trained by a user's nn.Module factory (packed with torch.func). Each winner beats chance
on validation and on the test split, opened once; every trial is an MLflow run under its stage."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import Workflow

STAGES = ("coarse", "fine", "repeat")
HERE = Path(__file__).resolve().parent


def full_chain(wf: Workflow, source: str, lr: list[float], data: dict | None = None, **train) -> dict:
    """4 coarse trials (one pack) → 2 fine → the best × 2 seeds → select → MLflow → the lockbox."""
    config = wf.config
    config["data"].update(source=source, coarse={"fraction": 1.0, "rows": None, "classes": None}, **(data or {}))
    config["train"].update(early_stopping=False, **train)
    config["search"]["pack_size"] = 4
    config["search"]["space"] = {"lr": {"log_uniform": lr}}
    config["search"]["stages"] = [
        {"name": "coarse", "kind": "search", "sampler": "random", "trials": 4, "data": "train_coarse"},
        {"name": "fine", "kind": "search", "sampler": "random", "trials": 2, "data": "train",
         "from": "coarse", "top_k": 2},
        {"name": "repeat", "kind": "repeat", "from": "fine", "top_n": 1, "seeds": 2, "data": "train"},
        {"name": "select", "kind": "select", "from": "repeat"}]
    wf.write_config(config)
    wf.run("final_test", *[f"results/{s}/mlflow_sync.json" for s in (*STAGES, "select")],
           "--config", "final_test=confirm", timeout=900)
    results = wf.root / "results"
    winner = json.loads((results / "select/winner.json").read_text())
    test = json.loads((results / "test/evaluation-1.json").read_text())
    ledger = (results / "lockbox/ledger.jsonl").read_text().splitlines()
    assert [json.loads(line)["kind"] for line in ledger] == ["evaluation", "result"]
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("alchemist").experiment_id], max_results=500)
    kinds = [r.data.tags.get("alchemist.kind") for r in runs]
    assert kinds.count("trial") == 4 + 2 + 2 and kinds.count("select") == 1, kinds
    assert set(STAGES) <= {r.data.tags["alchemist.stage"] for r in runs if r.data.tags.get("alchemist.kind") == "stage"}
    return {"winner": winner["winner"]["mean"], "test": test["test_mean"],
            "prep": json.loads((results / "data/prep.json").read_text())}


def test_shapes_with_the_resnet_cnn(tmp_path):
    wf = Workflow(tmp_path / "wf")
    out = full_chain(wf, "synthetic:shapes:400", [1e-3, 1e-2], model="rescnn", cnn_channels=[4, 8],
                     hidden=[32], epochs=8, batch_size=16, augment=True, aug_shift=2, aug_flip=True,
                     aug_rotate=10.0)
    prep = out["prep"]
    assert prep["image_shape"] == [3, 32, 32] and prep["normalisation"]["per_channel"] is True
    stats = prep["normalisation"]["columns"]
    assert stats["c0_0_0"] == stats["c0_31_31"] != stats["c1_0_0"]       # one mean/std per channel
    assert out["winner"] > 0.4 and out["test"] > 0.4, out                   # chance: 0.25


def test_sequences_with_the_lstm(tmp_path):
    wf = Workflow(tmp_path / "wf")
    out = full_chain(wf, "synthetic:sequences:800", [3e-3, 3e-2], model="lstm", hidden=[8, 16],
                     epochs=6, grad_clip=5.0, forget_bias=2.0)
    assert out["prep"]["sequence"] == {"vocab": 10, "length": 20}
    assert out["prep"]["normalisation"]["method"] == "none"
    assert out["winner"] > 0.7 and out["test"] > 0.7, out                   # chance: 0.5


def test_a_folder_of_png_images(tmp_path):
    from PIL import Image

    from alchemist.data.synthetic import SHAPES, shapes

    wf = Workflow(tmp_path / "wf")
    frame, _ = shapes(rows=320, size=16)
    pixels = frame.drop(columns="target").to_numpy().reshape(-1, 3, 16, 16)
    for i, (img, label) in enumerate(zip(pixels, frame["target"])):
        folder = wf.root / "images" / SHAPES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img.transpose(1, 2, 0) * 255).round().astype(np.uint8)).save(folder / f"{i:04d}.png")
    out = full_chain(wf, "images", [1e-3, 1e-2], data={"image_size": 12}, model="cnn", cnn_channels=[8, 16],
                     hidden=[32], epochs=8, batch_size=32, augment=True, aug_shift=1, aug_rotate=10.0)
    prep = out["prep"]
    assert prep["format"] == "npz" and prep["image_shape"] == [3, 12, 12]
    assert prep["classes"] == sorted(SHAPES) and len(prep["normalisation"]["channels"]) == 3
    assert (wf.root / "results/data/train.npz").exists() and not (wf.root / "results/data/train.parquet").exists()
    assert out["winner"] > 0.4 and out["test"] > 0.4, out                   # chance: 0.25
    # new images at another size (24×24; prep resized 16 → 12), laid out like the training folder:
    # `alchemist predict` decodes them as prep did and scores them; the registered pyfunc, given
    # their paths, predicts the same
    new, _ = shapes(rows=40, size=24, seed=7)
    for i, (img, label) in enumerate(zip(new.drop(columns="target").to_numpy().reshape(-1, 3, 24, 24),
                                         new["target"])):
        folder = wf.root / "new" / SHAPES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img.transpose(1, 2, 0) * 255).round().astype(np.uint8)).save(folder / f"{i:04d}.png")
    proc = subprocess.run(["alchemist", "predict", "--data", "new", "--out", "new.csv"], cwd=wf.root,
                          capture_output=True, text=True, env=wf.env)
    assert proc.returncode == 0 and "accuracy" in proc.stdout, proc.stderr[-2000:]
    by_cli = pd.read_csv(wf.root / "new.csv")
    assert len(by_cli) == 40 and {"file", "prediction", *(f"p_{c}" for c in SHAPES)} <= set(by_cli.columns)
    script = ("import mlflow, pandas as pd; mlflow.set_tracking_uri('sqlite:///results/mlflow.db'); "
              "m = mlflow.pyfunc.load_model('models:/alchemist-winner@champion'); "
              "files = pd.read_csv('new.csv')['file']; "
              "m.predict(pd.DataFrame({'image': files})).to_csv('pyfunc.csv', index=False)")
    loaded = subprocess.run([sys.executable, "-c", script], cwd=wf.root, capture_output=True, text=True, env=wf.env)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    by_pyfunc = pd.read_csv(wf.root / "pyfunc.csv")
    assert (by_pyfunc["prediction"] == by_cli["prediction"]).all()
    assert np.allclose(by_pyfunc[f"p_{SHAPES[0]}"], by_cli[f"p_{SHAPES[0]}"], atol=1e-6)


def test_a_dataset_callable_and_a_module_factory(tmp_path):
    wf = Workflow(tmp_path / "wf")
    for helper in ("user_data.py", "user_models.py"):
        shutil.copy(HERE / helper, wf.root / helper)
    out = full_chain(wf, "user_data:rows", [1e-3, 1e-2], model="user_models:two_layer", epochs=5)
    assert len(out["prep"]["features"]) == 72 and out["prep"]["task"] == "multiclass"
    log = "".join(p.read_text() for p in (wf.root / "results/logs/train").rglob("*.log"))
    assert "vmap" in log.lower() or "torch.func" in log.lower(), log[-2000:]
    assert out["winner"] > 0.8 and out["test"] > 0.8, out                   # chance: 1/3
