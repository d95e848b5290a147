"""`data.source: package.module:callable` (alchemist.data.callable_source): arrays or a Dataset
of (x, y) pairs go through the same prep — images per channel, tables per column — train, and a
broken callable is one clear line; the module's file is an input of prep."""
from __future__ import annotations

import pytest
from train_fixtures import trainer

from alchemist.config import validate
from alchemist.dag import data_files
from alchemist.data.prep import prepare, write
from alchemist.errors import UserError


def prep(source: str) -> dict:
    return prepare(validate({"data": {"source": source}})["data"])


def test_arrays_and_a_dataset_go_through_prep_and_train(tmp_path):
    images = prep("user_data:blobs")
    table = prep("user_data:rows")
    assert images.manifest["image_shape"] == [2, 6, 6] and images.manifest["normalisation"]["per_channel"]
    assert table.manifest["image_shape"] is None and len(table.manifest["features"]) == 72
    assert images.manifest["task"] == table.manifest["task"] == "multiclass"
    assert images.manifest["source"]["sha256"] == table.manifest["source"]["sha256"]   # same content
    write(images, tmp_path / "data")
    pack = trainer(tmp_path / "data", [dict(model="cnn", cnn_channels=[8], hidden=[16], epochs=6, lr=1e-2, seed=0)])
    pack.fit()
    assert pack.rows[0][-1]["val_metric"] > 0.8
    assert data_files({"source": "user_data:blobs"})[0].endswith("user_data.py")


def test_token_ids_from_a_callable_are_a_sequence(tmp_path):
    prepared = prepare(validate({"data": {"source": "user_data:tokens", "inputs": "tokens"}})["data"])
    m = prepared.manifest
    assert m["sequence"] == {"vocab": 6, "length": 10} and m["normalisation"]["method"] == "none"
    write(prepared, tmp_path / "data")
    pack = trainer(tmp_path / "data", [dict(model="gru", hidden=[8, 16], epochs=8, lr=3e-2, seed=0)])
    pack.fit()
    assert max(r["val_metric"] for r in pack.rows[0]) > 0.85


@pytest.mark.parametrize("name, fragment", [("broken", "OSError: the shard server is down"),
                                            ("a_string", "returned str"),
                                            ("nowhere", "AttributeError")])
def test_a_bad_callable_is_one_line(name, fragment):
    with pytest.raises(UserError, match="data.source") as err:
        prep(f"user_data:{name}")
    assert fragment in str(err.value) and "\n" not in str(err.value)
