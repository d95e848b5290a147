"""Array sources (alchemist.data.arrays, array_prep, split_files): .npy/.npz files and token
sequences go through the same prep as tables — the same split rows and the same train-only
statistics as the callable path gives for the same arrays — written as memory-mapped .npz
splits; a source larger than the memory a process may use still prepares and trains."""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from train_fixtures import trainer
from user_data import blobs

from alchemist.config import validate
from alchemist.data.prep import prepare, write
from alchemist.data.split_files import open_member
from alchemist.errors import UserError


def prep(tmp_path, **data) -> dict:
    return write(prepare(validate({"data": data})["data"]), tmp_path / "data")


def test_npz_and_npy_prepare_as_the_callable_path_and_train(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, y = blobs()                                     # (600, 2, 6, 6) float64, 3 classes
    np.savez("blobs.npz", X=X, y=y)
    np.save("X.npy", X.reshape(600, -1))
    np.save("y.npy", y)
    callable_ = prepare(validate({"data": {"source": "user_data:blobs"}})["data"]).manifest
    npz = prep(tmp_path, source="blobs.npz")
    assert npz["format"] == "npz" and npz["image_shape"] == [2, 6, 6]
    for split in ("train", "val", "test", "train_coarse"):          # the same rows in every split
        assert npz["splits"][split]["row_ids_sha256"] == callable_["splits"][split]["row_ids_sha256"]
    channels = npz["normalisation"]["channels"]                      # per channel, train only
    expect = callable_["normalisation"]["columns"]
    for c in (0, 1):
        assert channels[c]["mean"] == pytest.approx(expect[f"c{c}_0_0"]["mean"], rel=1e-9)
        assert channels[c]["std"] == pytest.approx(expect[f"c{c}_5_5"]["std"], rel=1e-9)
    assert npz["audit"]["stats_match_train"] and npz["test_rows"]["encoded"] == npz["splits"]["test"]["rows"]
    train = open_member(tmp_path / "data/train.npz", "X")
    assert isinstance(train, np.memmap) and train.shape == (384, 2, 6, 6) and train.dtype == np.float32
    rows = open_member(tmp_path / "data/train.npz", "_row_id")
    mean, std = X[rows, 0].mean(), X[rows, 0].std()
    assert np.allclose(train[:, 0], (X[rows, 0] - mean) / std, atol=1e-5)
    pack = trainer(tmp_path / "data", [dict(model="cnn", cnn_channels=[8], hidden=[16], epochs=6, lr=1e-2, seed=0)])
    assert isinstance(pack.train.X, __import__("torch").Tensor)
    pack.fit()
    assert pack.rows[0][-1]["val_metric"] > 0.8
    table = prep(tmp_path, source="X.npy", target="y.npy")           # (N, F): a table, per column
    assert table["image_shape"] is None and len(table["normalisation"]["columns"]) == 72
    assert table["splits"]["val"]["row_ids_sha256"] == npz["splits"]["val"]["row_ids_sha256"]
    # predict encodes new rows exactly as prep encoded them (column statistics in feature order)
    from alchemist.train.predict import read_arrays
    from alchemist.train.winner_predictor import encode_arrays

    val_ids = open_member(tmp_path / "data/val.npz", "_row_id")
    np.save("val_rows.npy", X.reshape(600, -1)[val_ids])
    rows, _, lengths = read_arrays(Path("val_rows.npy"), table)
    encoded = encode_arrays(rows, table, lengths)
    assert np.allclose(encoded, open_member(tmp_path / "data/val.npz", "X"), atol=1e-6)


def test_token_ids_with_lengths_are_masked_and_never_normalised(tmp_path):
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 7, (300, 12))
    lengths = rng.integers(3, 13, 300)
    y = (tokens[:, 0] > 3).astype(int)
    np.savez_compressed(tmp_path / "seq.npz", X=tokens, y=y, lengths=lengths)   # compressed: read whole
    m = prep(tmp_path, source=str(tmp_path / "seq.npz"), inputs="tokens")
    assert m["sequence"] == {"vocab": 7, "length": 12} and m["normalisation"]["method"] == "none"
    X = open_member(tmp_path / "data/val.npz", "X")
    ids = open_member(tmp_path / "data/val.npz", "_row_id")
    expect = np.where(np.arange(12)[None] < lengths[ids][:, None], tokens[ids], 0)
    assert np.array_equal(X, expect.astype(np.float32))


@pytest.mark.parametrize("arrays, data, fragment", [
    ({"X": np.zeros((50, 4)), "y": np.zeros(40)}, {}, "50 input rows but 40 labels"),
    ({"X": np.full((60, 4), np.nan), "y": np.arange(60) % 2}, {}, "non-finite input value"),
    ({"X": np.zeros((60, 4))}, {}, "no array 'y'"),
    ({"X": np.zeros((60, 2, 2, 2, 2)), "y": np.arange(60) % 2}, {}, "data.inputs"),
    ({"X": np.zeros((60, 4)), "y": np.arange(60) % 2}, {"inputs": "tokens"}, "integer ids"),
    ({"X": np.zeros((60, 4)), "labels": np.arange(60) % 2}, {"target": "label"}, "no array 'label'"),
    ({"X": np.zeros((60, 8, 8, 3)), "y": np.arange(60) % 2}, {}, "channels-last"),
])
def test_a_bad_array_source_is_one_line(tmp_path, arrays, data, fragment):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(UserError) as err:
        prep(tmp_path, source=str(tmp_path / "bad.npz"), **data)
    assert fragment in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "data").exists()                  # nothing written


def test_a_folder_of_16_bit_grey_pngs_keeps_its_range(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("ALCHEMIST_CACHE_DIR", str(tmp_path / "cache"))

    rng = np.random.default_rng(0)
    pixels = {}
    for label, level in (("dark", 10000), ("light", 50000)):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(12):
            img = (level + rng.integers(0, 5000, (10, 10))).astype(np.uint16)
            Image.fromarray(img).save(tmp_path / "imgs" / label / f"{i}.png")
            pixels[(label, i)] = img
    m = prep(tmp_path, source=str(tmp_path / "imgs"), image_size=[10, 10])
    assert m["image_shape"] == [1, 10, 10] and m["classes"] == ["dark", "light"]
    every = np.stack(list(pixels.values())) / 65535.0             # not clipped at 255
    assert 0.2 < m["normalisation"]["channels"][0]["mean"] < 0.7 and abs(
        m["normalisation"]["channels"][0]["mean"] - every.mean()) < 0.1
    cached = list((tmp_path / "cache").glob("*.npy"))                # decoded once, mapped
    assert len(cached) == 1 and np.load(cached[0], mmap_mode="r").shape == (24, 1, 10, 10)
    stamp = cached[0].stat().st_mtime_ns
    assert prep(tmp_path, source=str(tmp_path / "imgs"), image_size=[10, 10])["source"] == m["source"]
    assert cached[0].stat().st_mtime_ns == stamp
    Image.fromarray(pixels[("dark", 0)] + 1).save(tmp_path / "imgs/dark/0.png")   # an edit
    assert prep(tmp_path, source=str(tmp_path / "imgs"), image_size=[10, 10])["source"] != m["source"]


def test_a_folder_says_what_decoding_did(tmp_path, monkeypatch):
    """Images of another size are resized (from which sizes, how many), grey ones among colour
    ones become RGB: in prep's notes (its log and prep.json), also when the folder was decoded before."""
    from PIL import Image

    monkeypatch.setenv("ALCHEMIST_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(1)
    for label in ("a", "b"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(12):
            w, h = (12, 12) if i % 4 else (20, 14)
            if i == 5:
                Image.fromarray(rng.integers(0, 255, (h, w)).astype(np.uint8), "L").save(
                    tmp_path / "imgs" / label / f"{i}.png")
            else:
                Image.fromarray(rng.integers(0, 255, (h, w, 3)).astype(np.uint8), "RGB").save(
                    tmp_path / "imgs" / label / f"{i}.png")
    for _ in range(2):                          # the second time from the cache
        notes = prep(tmp_path, source=str(tmp_path / "imgs"), image_size=[12, 12])["hygiene"]["warnings"]
        assert notes == ["data: 6 of 24 images resized to 12×12 (width × height, bilinear; data.image_size): "
                         "6 of 20×14", "data: 2 grey image(s) among colour ones: converted to RGB (3 equal channels)"]

    (tmp_path / "imgs" / "empty").mkdir()                         # a class folder left empty
    (tmp_path / "imgs" / "a" / "labels.csv").write_text("x")      # a stray file, not an image
    notes = prep(tmp_path, source=str(tmp_path / "imgs"), image_size=[12, 12])["hygiene"]["warnings"]
    assert notes[:2] == ["data.source: class folder 'empty' holds no image; it is not a class",
                         "data.source: 1 file(s) that are not images (.png/.jpg/.jpeg/.bmp/.gif/.tif/"
                         ".tiff/.webp) are left out: a/labels.csv"], notes


LIMIT_MB = 640      # RLIMIT_DATA of the prep and train processes: what they may allocate


def limited(*cmd: str, cwd: Path) -> subprocess.CompletedProcess:
    def cap():
        resource.setrlimit(resource.RLIMIT_DATA, (LIMIT_MB << 20, LIMIT_MB << 20))
    return subprocess.run([sys.executable, *cmd], cwd=cwd, preexec_fn=cap, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_a_source_larger_than_memory_prepares_and_trains(tmp_path):
    """950 MB of images (36,000 × 3×48×48 float32) under a 640 MB allocation limit: reading the
    file whole fails there; prep (memory-mapped, block by block) and a pack (rows drawn from the
    mapped 770 MB train split) succeed."""
    n, y = 36000, np.arange(36000) % 2
    X = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float32, shape=(n, 3, 48, 48))
    base = np.random.default_rng(0).random((512, 3, 48, 48), dtype=np.float32)
    for s in range(0, n, 512):
        e = min(s + 512, n)
        X[s:e] = base[:e - s] + 0.3 * y[s:e, None, None, None] + (np.arange(s, e) * 1e-5)[:, None, None, None]
    X.flush()
    del X
    np.save(tmp_path / "y.npy", y)
    assert (tmp_path / "big.npy").stat().st_size > LIMIT_MB << 20
    whole = limited("-c", "import numpy; numpy.load('big.npy')", cwd=tmp_path)
    assert whole.returncode != 0 and "Unable to allocate" in whole.stderr      # the limit bites
    data = json.dumps({"source": "big.npy", "target": "y.npy", "test_fraction": 0.1, "val_fraction": 0.1})
    done = limited("-m", "alchemist", "prep", "--data-json", data, "--out", "data", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "data/train.npz").stat().st_size > LIMIT_MB << 20
    with zipfile.ZipFile(tmp_path / "data/train.npz") as archive:          # stored: mappable
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
    (tmp_path / "trials.json").write_text(json.dumps(
        [{"model": "mlp", "hidden": [16], "epochs": 1, "batch_size": 256, "lr": lr, "seed": k, "device": "cpu"}
         for k, lr in enumerate([1e-3, 3e-3])]))
    trained = limited("-m", "alchemist", "train", "--trials", "trials.json", "--data-dir", "data",
                      "--out-dir", "out", "--threads", "1", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("*/summary.json")]
    assert len(summaries) == 2 and all(s["status"] == "completed" and s["kept_val_metric"] > 0.9
                                       for s in summaries)
    # `alchemist predict` on new arrays: encoded with the stored statistics; test rows refused
    from alchemist.train.predict import predict_table

    dirs = sorted(p.parent for p in (tmp_path / "out").glob("*/model.pt"))
    new_y = np.arange(64) % 2
    new = base[:64] + 0.3 * new_y[:, None, None, None] + ((n + np.arange(64)) * 1e-5)[:, None, None, None]
    np.savez(tmp_path / "new.npz", X=new, y=new_y)
    assert predict_table(tmp_path / "new.npz", tmp_path / "data", dirs).attrs["accuracy"] > 0.9
    test_rows = np.sort(open_member(tmp_path / "data/test.npz", "_row_id")[:5])
    np.save(tmp_path / "leak.npy", np.load(tmp_path / "big.npy", mmap_mode="r")[test_rows])
    with pytest.raises(UserError, match="5 of its 5 rows are test rows"):
        predict_table(tmp_path / "leak.npy", tmp_path / "data", dirs)
