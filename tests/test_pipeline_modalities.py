"""Beyond tables, end to end through coarse → repeat → select on the generated built-in sets (no
download): images (synthetic:shapes, 3×32×32) with the CNN and augmentation (the ResNet-style
`rescnn`, 3× the convolutions, is checked pack == solo in test_train_pack), prep
normalising per channel with train statistics; token sequences (synthetic:sequences) with the
embedding + LSTM, never normalised. Each winner beats chance. (The sweep up to the selection:
diagnostics, MLflow and the lockbox are the default pipeline's tests.)"""
from __future__ import annotations

import json

from conftest import Workflow


def small_sweep(wf: Workflow, source: str, lr: list[float], **train) -> dict:
    config = wf.config
    config["data"].update(source=source, coarse={"fraction": 1.0, "rows": None, "classes": None})
    config["train"].update(early_stopping=False, **train)
    config["search"]["pack_size"] = 4
    config["search"]["space"] = {"lr": {"log_uniform": lr}}
    config["search"]["stages"] = [
        {"name": "coarse", "kind": "search", "sampler": "random", "trials": 4, "data": "train_coarse"},
        {"name": "repeat", "kind": "repeat", "from": "coarse", "top_n": 1, "seeds": 2, "data": "train"},
        {"name": "select", "kind": "select", "from": "repeat"}]
    config["mlflow"]["enabled"] = False
    wf.write_config(config)
    return config


def test_shapes_with_the_cnn(tmp_path):
    wf = Workflow(tmp_path / "wf")
    small_sweep(wf, "synthetic:shapes:480", [1e-3, 1e-2], model="cnn", cnn_channels=[8, 16],
                hidden=[32], epochs=6, batch_size=32, augment=True, aug_shift=2, aug_flip=True)
    wf.run("results/select/winner.json", timeout=900)
    prep = json.loads((wf.root / "results/data/prep.json").read_text())
    assert prep["image_shape"] == [3, 32, 32] and prep["normalisation"]["per_channel"] is True
    stats = prep["normalisation"]["columns"]
    assert stats["c0_0_0"] == stats["c0_31_31"] != stats["c1_0_0"]       # one mean/std per channel
    winner = json.loads((wf.root / "results/select/winner.json").read_text())
    assert winner["metric"] == "val_accuracy" and winner["winner"]["mean"] > 0.4, winner["winner"]


def test_sequences_with_the_lstm(tmp_path):
    wf = Workflow(tmp_path / "wf")
    small_sweep(wf, "synthetic:sequences:1200", [3e-3, 3e-2], model="lstm", hidden=[16, 32], epochs=6,
                grad_clip=5.0)
    wf.run("results/select/winner.json", timeout=900)
    prep = json.loads((wf.root / "results/data/prep.json").read_text())
    assert prep["sequence"] == {"vocab": 10, "length": 20} and prep["normalisation"]["method"] == "none"
    winner = json.loads((wf.root / "results/select/winner.json").read_text())
    assert winner["winner"]["mean"] > 0.7, winner["winner"]          # chance: 0.5
