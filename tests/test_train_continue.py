"""Continuation across packs (successive halving): a trial trained to 3 epochs in one pack and
continued to 6 in another equals a 6-epoch run; an early-stopped trial stays stopped; re-running
a rung starts from the same snapshot; a pack-level checkpoint of a continued pack resumes exactly."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from train_fixtures import digits_dir, trainer  # noqa: F401

from alchemist.cli import main
from alchemist.train import checkpoint as ckpt

BASE = dict(hidden=[64], batch_size=32, optimizer="adam", augment=True, aug_noise=0.05, early_stopping=False)
TRIALS = {  # explicit ids, as the halving plan gives them: the id stays, `epochs` changes per rung
    "x": dict(BASE, trial_id="x", lr=3e-3, dropout=0.2, seed=0, schedule="plateau", plateau_patience=1),
    "y": dict(BASE, trial_id="y", lr=1e-3, dropout=0.0, seed=1, weight_decay=1e-4, schedule="plateau",
              plateau_patience=1, warmup_epochs=1),
    "w": dict(BASE, trial_id="w", lr=1e-3, seed=2, schedule="plateau", early_stopping=True, patience=1,
              min_delta=10.0),          # never improves by 10: stops after epoch 2
}


def train(tmp: Path, data: Path, out: Path, ids: list[str], epochs: int, name: str, **extra) -> dict:
    spec = tmp / f"{name}.json"
    spec.write_text(json.dumps([dict(TRIALS[i], epochs=epochs, **extra) for i in ids]))
    done = tmp / f"{name}.done.json"
    assert main(["train", "--trials", str(spec), "--data-dir", str(data), "--out-dir", str(out),
                 "--done", str(done), "--threads", "1", "--device", "cpu"]) == 0
    return json.loads(done.read_text())["trials"]


def metrics(out: Path, tid: str) -> pd.DataFrame:
    return pd.read_parquet(out / tid / "metrics.parquet").drop(columns="epoch_time_s")


def continued_from(out: Path, tid: str, rows: pd.DataFrame) -> bool:
    """The first epochs' rows, timings included, are the earlier run's: not trained again."""
    got = pd.read_parquet(out / tid / "metrics.parquet").iloc[:len(rows)].reset_index(drop=True)
    return got["epoch_time_s"].tolist() == rows["epoch_time_s"].tolist()


@pytest.fixture(scope="module")
def runs(digits_dir, tmp_path_factory):  # noqa: F811
    tmp = tmp_path_factory.mktemp("continue")
    ref, rungs = tmp / "ref", tmp / "rungs"
    assert train(tmp, digits_dir, ref, ["x", "y", "w"], 6, "ref") == \
        {"x": "completed", "y": "completed", "w": "early_stopped"}
    rung1 = train(tmp, digits_dir, rungs, ["x", "y", "w"], 3, "rung1")
    after1 = {t: pd.read_parquet(rungs / t / "metrics.parquet") for t in TRIALS}   # with epoch_time_s
    model_w = torch.load(rungs / "w" / "model.pt", weights_only=False)["state"]
    rung2 = train(tmp, digits_dir, rungs, ["x", "y", "w"], 6, "rung2")
    return tmp, ref, rungs, rung1, rung2, after1, model_w


def test_continued_trial_equals_an_uninterrupted_run_bitwise(runs):
    tmp, ref, rungs, rung1, rung2, after1, _ = runs
    assert rung1 == {"x": "completed", "y": "completed", "w": "early_stopped"}
    assert rung2 == {"x": "completed", "y": "completed", "w": "early_stopped"}
    for tid in ("x", "y"):
        assert len(after1[tid]) == 3
        got = metrics(rungs, tid)
        assert got["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
        pd.testing.assert_frame_equal(got, metrics(ref, tid), check_exact=True)
        assert continued_from(rungs, tid, after1[tid])
        summary = json.loads((rungs / tid / "summary.json").read_text())
        assert summary["epochs_run"] == 6 and json.loads((rungs / tid / "config.json").read_text())["epochs"] == 6
        ref_model = torch.load(ref / tid / "model.pt", weights_only=False)["state"]
        got_model = torch.load(rungs / tid / "model.pt", weights_only=False)["state"]
        assert all(torch.equal(ref_model[n], got_model[n]) for n in ref_model)
    snaps = torch.load(rungs / "x" / "state.pt", weights_only=False)["snapshots"]
    assert sorted(snaps) == [3, 6] and snaps[6]["epochs_done"] == 6


def test_early_stopped_trial_is_not_continued(runs):
    tmp, ref, rungs, rung1, rung2, after1, model_w = runs
    got = metrics(rungs, "w")
    assert got["epoch"].tolist() == [1, 2]                    # stopped in rung 1, still stopped
    assert continued_from(rungs, "w", after1["w"]) and len(after1["w"]) == 2
    pd.testing.assert_frame_equal(got, metrics(ref, "w"), check_exact=True)
    summary = json.loads((rungs / "w" / "summary.json").read_text())
    assert summary["status"] == "early_stopped" and summary["epochs_run"] == 2
    state = torch.load(rungs / "w" / "model.pt", weights_only=False)["state"]
    assert all(torch.equal(state[n], model_w[n]) for n in state)


def test_rerun_of_a_rung_starts_from_the_same_snapshot(runs, digits_dir):  # noqa: F811
    tmp, ref, rungs, *_ = runs
    again = tmp / "again"
    shutil.copytree(rungs, again)                             # holds snapshots at 3 and 6 epochs
    train(tmp, digits_dir, again, ["x", "y", "w"], 6, "rerun")
    for tid in TRIALS:
        pd.testing.assert_frame_equal(metrics(again, tid), metrics(ref, tid), check_exact=True)
    assert continued_from(again, "x", runs[5]["x"])            # from the 3-epoch snapshot again


def test_continued_in_other_company_equals_its_solo_run(runs, digits_dir):  # noqa: F811
    """Rungs repack trials: continued next to a fresh trial, x still follows its own run."""
    tmp, ref, rungs, *_ = runs
    out = tmp / "mixed"
    out.mkdir()
    snaps = torch.load(rungs / "x" / "state.pt", weights_only=False)["snapshots"]
    (out / "x").mkdir()
    ckpt.save_atomic({"format": ckpt.FORMAT, "snapshots": {3: snaps[3]}}, out / "x" / "state.pt")
    fresh = dict(TRIALS["y"], trial_id="z", seed=7)
    TRIALS["z"] = fresh
    try:
        assert train(tmp, digits_dir, out, ["z", "x"], 6, "mixed") == {"z": "completed", "x": "completed"}
    finally:
        del TRIALS["z"]
    got, want = metrics(out, "x"), metrics(ref, "x")
    assert got["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
    for col in ("train_loss", "val_loss", "val_metric", "lr"):
        assert got[col].tolist() == pytest.approx(want[col].tolist(), rel=1e-5)
    assert continued_from(out, "x", pd.DataFrame(snaps[3]["rows"]))
    assert len(metrics(out, "z")) == 6                       # the fresh trial ran its 6 epochs


def three_then_six(tmp: Path, data: Path, tid: str, cfg: dict):
    """Trial `tid` run 6 epochs straight, and 3 then continued to 6: (continued, straight) rows."""
    TRIALS[tid] = dict(BASE, trial_id=tid, **cfg)
    try:
        train(tmp, data, tmp / "ref", [tid], 6, "ref")
        train(tmp, data, tmp / "r", [tid], 3, "r1")
        first = pd.read_parquet(tmp / "r" / tid / "metrics.parquet")
        train(tmp, data, tmp / "r", [tid], 6, "r2")
    finally:
        del TRIALS[tid]
    assert continued_from(tmp / "r", tid, first)
    return metrics(tmp / "r", tid), metrics(tmp / "ref", tid)


def test_cosine_continues_on_the_longer_schedule(digits_dir, tmp_path):  # noqa: F811
    """Cosine's LR depends on the epoch count, so 3 + 3 epochs cannot equal a 6-epoch run. What
    holds: the first 3 epochs are the 3-epoch run's, and from epoch 4 on the LR is the 6-epoch
    schedule's (rebuilt for 6 epochs and replayed), not the 3-epoch cosine's restart."""
    got, ref = three_then_six(tmp_path, digits_dir, "c", dict(lr=1e-2, seed=3, schedule="cosine", eta_min=0.0))
    assert got["lr"].tolist()[3:] == ref["lr"].tolist()[3:]
    assert got["lr"].tolist()[:3] != ref["lr"].tolist()[:3]


def test_cosine_spanning_the_last_rung_continues_as_one_run(digits_dir, tmp_path):  # noqa: F811
    """With `schedule_epochs` fixed (what a halving stage sets), 3 + 3 epochs equal a 6-epoch run."""
    got, ref = three_then_six(tmp_path, digits_dir, "s", dict(lr=1e-2, seed=4, schedule="cosine",
                                                              eta_min=0.0, schedule_epochs=6))
    assert got["lr"].iloc[-1] < got["lr"].iloc[0] / 2      # it does anneal
    pd.testing.assert_frame_equal(got, ref)                 # the LR curve and every metric


def test_pack_checkpoint_of_a_continued_pack_resumes_exactly(runs, digits_dir):  # noqa: F811
    tmp, ref, rungs, *_ = runs
    snaps = {t: torch.load(rungs / t / "state.pt", weights_only=False)["snapshots"][3] for t in ("x", "y")}
    trials = [dict(TRIALS[t], epochs=6) for t in ("x", "y")]

    def continued():
        tr = trainer(digits_dir, trials)
        assert all(tr.continue_from(k, snaps[t]) for k, t in enumerate(("x", "y")))
        return tr

    saved = []

    def save(tr, force=False):
        if tr.epoch == 1:
            buf = io.BytesIO()
            torch.save(ckpt.trainer_state(tr), buf)
            saved.append(buf.getvalue())

    whole = continued()
    whole.fit(save)
    resumed = continued()
    ckpt.restore(resumed, torch.load(io.BytesIO(saved[0]), weights_only=False))
    assert resumed.trial_epoch == [4, 4] and resumed.start == [3, 3]
    resumed.fit()
    strip = lambda rows: [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in rows]  # noqa: E731
    assert [strip(r) for r in resumed.rows] == [strip(r) for r in whole.rows]
    assert all(c is not None and c["epochs_done"] == 6 for c in resumed.cont)


def test_state_of_another_format_is_not_loaded(digits_dir, tmp_path, monkeypatch):  # noqa: F811
    """A job killed under an older engine and re-run after an upgrade starts afresh: neither its
    pack checkpoint nor its continuation snapshot is read (their layout would not fit)."""
    out = tmp_path / "out"
    monkeypatch.setattr(ckpt, "FORMAT", 1)
    train(tmp_path, digits_dir, out, ["x"], 3, "old")
    snapshots = out / "x" / ckpt.CONTINUATION
    trials = [dict(TRIALS["x"], epochs=6)]
    pack_file = tmp_path / "pack.pt"
    ckpt.save_atomic({"fingerprint": ckpt.pack_fingerprint(trials), "state": {"epoch": 2}}, pack_file)
    assert ckpt._snapshots(snapshots) and ckpt.load(pack_file, ckpt.pack_fingerprint(trials)) == {"epoch": 2}
    monkeypatch.setattr(ckpt, "FORMAT", 2)
    assert ckpt._snapshots(snapshots) == {}
    assert ckpt.load(pack_file, ckpt.pack_fingerprint(trials)) is None
