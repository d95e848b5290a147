"""The image path end to end on the built-in image set (synthetic:shapes: coloured shapes,
3×32×32, generated, no download): prep normalises per channel with train statistics, the
ResNet-style CNN trains with augmentation through coarse → repeat → select, and the winner
beats chance."""
from __future__ import annotations

import json

from conftest import Workflow


def test_shapes_with_the_resnet_style_cnn(tmp_path):
    wf = Workflow(tmp_path / "wf")
    config = wf.config
    config["data"].update(source="synthetic:shapes:480", coarse={"fraction": 1.0, "rows": None, "classes": None})
    config["train"].update(model="rescnn", cnn_channels=[8, 16], hidden=[32], epochs=6, batch_size=32,
                           augment=True, aug_shift=2, aug_flip=True, early_stopping=False)
    config["search"]["pack_size"] = 4
    config["search"]["space"] = {"lr": {"log_uniform": [1e-3, 1e-2]}}
    config["search"]["stages"] = [
        {"name": "coarse", "kind": "search", "sampler": "random", "trials": 4, "data": "train_coarse"},
        {"name": "repeat", "kind": "repeat", "from": "coarse", "top_n": 1, "seeds": 2, "data": "train"},
        {"name": "select", "kind": "select", "from": "repeat"}]
    config["mlflow"]["enabled"] = False
    wf.write_config(config)
    proc = wf.run(timeout=900)
    prep = json.loads((wf.root / "results/data/prep.json").read_text())
    assert prep["image_shape"] == [3, 32, 32] and prep["normalisation"]["per_channel"] is True
    stats = prep["normalisation"]["columns"]
    assert stats["c0_0_0"] == stats["c0_31_31"] != stats["c1_0_0"]       # one mean/std per channel
    winner = json.loads((wf.root / "results/select/winner.json").read_text())
    assert winner["metric"] == "val_accuracy" and winner["winner"]["mean"] > 0.4, winner["winner"]
    assert "WINNER" in proc.stdout + proc.stderr
