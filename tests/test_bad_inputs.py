"""Bad input, a corpus of mistakes: one clear line naming the culprit (key, file or column),
non-zero exit before any job runs, no traceback, nothing under results/ touched.

Each case runs on a workflow whose results/ already holds a good prep, so the test proves both
the message and that earlier results survive: a representative subset through the real
`snakemake`, the rest through the Snakefile's parse-time entry point (see THROUGH_SNAKEMAKE). A case is a config edit (a
function of the config), optionally a replacement text for config/config.yaml or an override
file, and the fragments its one error line must hold.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import Workflow


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    wf = Workflow(tmp_path_factory.mktemp("errors") / "wf")
    wf.run("results/data/prep.json")
    files = wf.root / "files"
    files.mkdir()
    rng = np.random.default_rng(0)
    good = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60),
                         "y": rng.choice([0, 1], 60), "word": rng.choice(["x", "z"], 60)})
    good.to_csv(files / "good.csv", index=False)
    good.assign(y=1).to_csv(files / "one_class.csv", index=False)
    good.head(4).to_csv(files / "tiny.csv", index=False)
    good.head(0).to_csv(files / "header_only.csv", index=False)
    good.assign(y=np.nan).to_csv(files / "nan_target.csv", index=False)
    good.assign(y=good["y"].astype(object)).pipe(lambda f: f.assign(y=[*f["y"][:-1], None]))\
        .to_csv(files / "some_nan_target.csv", index=False)
    stray = good.assign(r=rng.normal(size=60).round(3).astype(object))
    stray.loc[17, "r"] = "n/a?"
    stray.to_csv(files / "stray_target.csv", index=False)
    (files / "dupes.csv").write_text("a,a,y\n" + "\n".join(f"{i},{i},{i % 2}" for i in range(60)))
    pq.write_table(pa.table({"a": [[1, 2]] * 60, "y": [i % 2 for i in range(60)]}), files / "nested.parquet")
    nan = good.copy()
    nan.loc[3, "a"] = np.nan
    nan.to_csv(files / "nan.csv", index=False)
    inf = good.copy()
    inf.loc[5, "b"] = np.inf
    inf.to_parquet(files / "inf.parquet")
    good.assign(r=np.r_[np.inf, rng.normal(size=59)]).to_parquet(files / "inf_target.parquet")
    good.assign(_row_id=1).to_csv(files / "reserved.csv", index=False)
    good.assign(y=np.arange(60) % 3).to_csv(files / "three.csv", index=False)
    good.assign(r=2.5).to_csv(files / "constant_target.csv", index=False)
    good.assign(row=np.arange(100, 160)).to_csv(files / "id_target.csv", index=False)
    good.drop(columns=["b"]).to_csv(files / "test_lacks_b.csv", index=False)
    pd.DataFrame({"id": [f"u{i}" for i in range(300)], "y": np.arange(300) % 2}).to_csv(files / "ids.csv", index=False)
    (files / "garbage.parquet").write_bytes(b"not a parquet file at all")
    import torch

    (files / "garbage.pt").write_bytes(b"not a torch file")
    torch.save({"l0_w": torch.full((64, 128), float("nan"))}, files / "nan_weights.pt")
    torch.save({"unrelated": torch.zeros(3)}, files / "unrelated.pt")
    (files / "good.xlsx").write_bytes(b"PK\x03\x04")
    from PIL import Image

    for folder, size in (("pixels", (1, 1)), ("corrupt_images", (8, 8))):
        for label in ("a", "b"):
            (files / folder / label).mkdir(parents=True)
            for i in range(40):
                Image.fromarray(np.full(size[::-1] + (3,), 40 * i % 256, np.uint8)).save(
                    files / folder / label / f"{i}.png")
    (files / "corrupt_images/b/bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    for label in ("a", "b"):
        (files / "not_images" / label).mkdir(parents=True)
        (files / "not_images" / label / "notes.txt").write_text("no pictures here")
    return wf


def data(**kw):
    return lambda c: c["data"].update(kw)


def train(**kw):
    return lambda c: c["train"].update(kw)


def space(**kw):
    return lambda c: c["search"]["space"].update(kw)


def stage(which, **kw):
    return lambda c: next(s for s in c["search"]["stages"] if s["name"] == which).update(kw)


def csv(name, **kw):
    return data(source=f"files/{name}", target=kw.pop("target", "y"), **kw)


def stages(edit):
    def apply(c):
        c["search"]["stages"] = edit(c["search"]["stages"])
    return apply


CASES = {
    # -- data source and target
    "missing file": (csv("absent.csv"), ["files/absent.csv", "not found"]),
    "unknown builtin": (data(source="sklearn:mnistt"), ["sklearn:mnistt"]),
    "missing target column": (csv("good.csv", target="label"), ["'label'", "not found"]),
    "single class": (csv("one_class.csv"), ["'y'", "single class"]),
    "too few rows": (csv("tiny.csv"), ["too few rows"]),
    "header-only CSV": (csv("header_only.csv"), ["no rows"]),
    "all-NaN target": (csv("nan_target.csv"), ["'y'", "all missing"]),
    "some NaN in target": (csv("some_nan_target.csv"), ["'y'", "missing value"]),
    "stray string in numeric target": (csv("stray_target.csv", target="r"), ["'r'", "'n/a?'", "row 17"]),
    "non-numeric regression target": (csv("good.csv", target="word", task="regression"), ["'word'", "not numeric"]),
    "inf in regression target": (csv("inf_target.parquet", target="r"), ["'r'", "non-finite"]),
    "binary task with 3 classes": (csv("three.csv", task="binary"), ["data.task", "3 classes"]),
    "duplicate column names": (csv("dupes.csv"), ["'a'", "appears twice", "dupes.csv"]),
    "nested parquet column": (csv("nested.parquet"), ["'a'", "nested"]),
    "reserved column name": (csv("reserved.csv"), ["'_row_id'", "reserved"]),
    "unsupported file type": (csv("good.xlsx"), ["good.xlsx", "unsupported file type"]),
    "garbage parquet": (csv("garbage.parquet"), ["garbage.parquet", "cannot read"]),
    "only an ID column": (csv("ids.csv"), ["no feature column is left", "'id'"]),
    "test file lacks a column": (csv("good.csv", test_file="files/test_lacks_b.csv"), ["data.test_file", "'b'"]),
    "test file absent": (csv("good.csv", test_file="files/nope.csv"), ["files/nope.csv", "not found"]),
    "nan under fail": (csv("nan.csv", missing="fail"), ["'a'", "missing"]),
    "inf under fail": (csv("inf.parquet", missing="fail"), ["'b'", "non-finite"]),
    # -- data settings
    "misspelt data key": (lambda c: c["data"].update(sourse=c["data"].pop("source")),
                          ["data.sourse", "did you mean 'data.source'"]),
    "test fraction out of range": (data(test_fraction=1.5), ["data.test_fraction"]),
    "negative val fraction": (data(val_fraction=-0.1), ["data.val_fraction"]),
    "normalise unknown": (data(normalise="standard"), ["data.normalise"]),
    "missing policy unknown": (data(missing="drop"), ["data.missing"]),
    "rebalance unknown": (data(rebalance="smote"), ["data.rebalance"]),
    "dates unknown": (data(dates="keep"), ["data.dates"]),
    "max_categories 1": (data(max_categories=1), ["data.max_categories"]),
    "negative min_frequency": (data(min_frequency=-1), ["data.min_frequency"]),
    "seed as text": (data(seed="abc"), ["data.seed"]),
    "coarse fraction zero": (data(coarse={"fraction": 0}), ["data.coarse.fraction"]),
    "metric for the wrong task": (data(metric="rmse"), ["data.metric", "rmse"]),
    "metric unknown": (data(metric="auc"), ["data.metric"]),
    "columns.drop unknown": (csv("good.csv", columns={"drop": ["zzz"]}), ["data.columns.drop", "'zzz'"]),
    "columns.drop the target": (csv("good.csv", columns={"drop": ["y"]}), ["data.columns.drop", "'y'"]),
    "columns.categorical unknown": (csv("good.csv", columns={"categorical": ["c"]}),
                                    ["data.columns.categorical", "'c'"]),
    "columns.numeric holds text": (csv("good.csv", columns={"numeric": ["word"]}),
                                   ["data.columns.numeric", "'word'"]),
    "columns unknown sub-key": (csv("good.csv", columns={"ignore": ["a"]}), ["data.columns.ignore"]),
    # -- training settings
    "negative lr": (train(lr=-1), ["train.lr"]),
    "dropout above 1": (train(dropout=1.5), ["train.dropout"]),
    "zero epochs": (train(epochs=0), ["train.epochs"]),
    "unknown optimizer": (train(optimizer="adamx"), ["train.optimizer"]),
    "zero batch size": (train(batch_size=0), ["train.batch_size"]),
    "hidden as text": (train(hidden="big"), ["train.hidden"]),
    "unknown loss": (train(loss="hinge"), ["train.loss"]),
    "misspelt train key": (train(learning_rat=0.1), ["train.learning_rat", "not allowed"]),
    "custom model that does not import": (train(model="nomodule_here:make"),
                                          ["train.model", "nomodule_here", "cannot import"]),
    "custom model attribute missing": (train(model="json:no_such_factory"),
                                       ["train.model", "no_such_factory"]),
    # -- search space
    "space bound outside the setting's range": (space(dropout={"uniform": [0, 1.5]}),
                                                ["search.space.dropout", "1.5"]),
    "space value outside the range": (space(batch_size={"choice": [32, 0]}), ["search.space.batch_size", "0"]),
    "log range through zero": (space(lr={"log_uniform": [0, 0.1]}), ["search.space.lr", "> 0"]),
    "range low above high": (space(dropout={"uniform": [0.5, 0.1]}), ["search.space.dropout", "low < high"]),
    "space unknown setting": (space(lrr={"uniform": [0.1, 0.2]}), ["search.space", "'lrr'"]),
    "space two distributions": (space(dropout={"uniform": [0, 0.5], "choice": [0.1]}),
                                ["search.space.dropout", "not valid"]),
    "space empty choice": (space(dropout={"choice": []}), ["search.space.dropout", "non-empty"]),
    "space int bounds not integers": (space(epochs={"int": [1.5, 9]}), ["search.space.epochs", "integer"]),
    "space condition on unknown setting": (space(momentum={"uniform": [0.5, 0.9], "when": {"optimiser": "sgd"}}),
                                           ["search.space.momentum.when", "'optimiser'"]),
    # -- stages
    "stage set outside the range": (stage("fine", set={"epochs": 0}), ["search.stages.fine.set.epochs", "0"]),
    "stage set unknown setting": (stage("fine", set={"epoch": 3}), ["search.stages.fine.set", "epoch"]),
    "top_k above the trials": (stage("fine", top_k=200), ["search.stages.fine.top_k", "200", "32"]),
    "top_n above the trials": (stage("repeat", top_n=50), ["search.stages.repeat.top_n", "50"]),
    "from an unknown stage": (stage("fine", **{"from": "corse"}), ["search.stages.fine.from"]),
    "duplicate stage names": (stages(lambda s: [s[0], dict(s[0])] + s[1:]), ["search.stages.coarse", "duplicate"]),
    "unknown stage kind": (stage("coarse", kind="explore"), ["search.stages.coarse.kind", "explore"]),
    "unknown sampler": (stage("coarse", sampler="bayes"), ["search.stages.coarse.sampler", "bayes"]),
    "unknown stage data": (stage("coarse", data="holdout"), ["search.stages.coarse.data", "holdout"]),
    "select confidence above 1": (stage("select", confidence=1.5), ["search.stages.select.confidence"]),
    "repeat with one seed": (stage("repeat", seeds=1), ["search.stages.repeat.seeds"]),
    "stage name with a space": (stage("select", name="pick one"), ["search.stages.3.name", "'pick one'"]),
    "random stage without trials": (lambda c: c["search"]["stages"][0].pop("trials"),
                                    ["search.stages.coarse", "trials"]),
    "halving rungs decreasing": (stages(lambda s: [{"name": "coarse", "kind": "halving", "sampler": "random",
                                                    "trials": 8, "rungs": [9, 3]}]),
                                 ["search.stages.coarse.rungs"]),
    "pack size zero": (lambda c: c["search"].update(pack_size=0), ["search.pack_size"]),
    "unknown stage key": (stage("coarse", trails=3), ["search.stages.coarse.trails", "did you mean"]),
    "constant regression target": (csv("constant_target.csv", target="r"),
                                   ["data.target", "'r'", "constant", "nothing to learn"]),
    "row ID as the target": (csv("id_target.csv", target="row"),
                             ["data.target", "'row'", "looks like a row ID", "100..159"]),
    # -- models, built once at parse time on the data's shapes (alchemist.train.model_check)
    "model factory raises": (train(model="user_models:raises", init="torch"),
                             ["train.model 'user_models:raises'", "raised ValueError", "no layer size"]),
    "model factory returns no module": (train(model="user_models:not_a_module"),
                                        ["train.model", "returned str, not a torch.nn.Module"]),
    "model factory with two arguments": (train(model="user_models:two_arguments"),
                                         ["train.model", "must accept (n_inputs, n_outputs, config)"]),
    "model built for another input width": (train(model="user_models:another_width"),
                                            ["train.model", "forward pass on 2 rows of 64 inputs failed"]),
    "model with one output too many": (train(model="user_models:one_output_too_many"),
                                       ["train.model", "(2, 11)", "needs (2, 10)"]),
    "model with NaN weights": (train(model="user_models:nan_weights", init="torch"),
                               ["train.model", "non-finite (NaN or Inf) weights"]),
    "cnn on a table": (lambda c: (c["data"].update(source="sklearn:wine"), c["train"].update(model="cnn")),
                       ["model 'cnn'", "image-shaped"]),
    "lstm on a table": (train(model="lstm"), ["model 'lstm'", "token sequences"]),
    "a stage's model on the wrong data": (stage("fine", set={"model": "gru"}),
                                          ["search.stages.fine.set", "token sequences"]),
    "init_from unreadable": (train(init_from="files/garbage.pt"), ["train.init_from", "cannot read"]),
    "init_from with NaN weights": (train(init_from="files/nan_weights.pt"),
                                   ["non-finite (NaN or Inf) weights after init_from"]),
    "init_from matching no tensor": (train(init_from="files/unrelated.pt"),
                                     ["train.init_from", "no tensor", "fits the model"]),
    "resmlp without hidden layers": (train(model="resmlp", hidden=[]),
                                     ["train.hidden", "[]", "'resmlp'", "no layer"]),
    "cnn on 1-pixel images": (lambda c: (c["data"].update(source="files/pixels"), c["train"].update(model="cnn")),
                              ["train.model 'cnn'", "1×1 pixels", "data.image_size"]),
    # -- image folders and Datasets: the culprit file or item named
    "corrupt image in a folder": (data(source="files/corrupt_images"), ["cannot read image", "bad.jpg"]),
    "a folder without images": (data(source="files/not_images"), ["data.source", "no images"]),
    "image_size zero": (data(source="files/pixels", image_size=0), ["data.image_size"]),
    "Dataset item that raises": (data(source="user_data:raises_at_7"),
                                 ["data.source", "item 7 of 600", "record 7 is corrupt"]),
    # -- other sections and files
    "garbage tracking_uri": (lambda c: c["mlflow"].update(tracking_uri="banana"),
                             ["mlflow.tracking_uri", "'banana'"]),
    "misspelt tracking_uri scheme": (lambda c: c["mlflow"].update(tracking_uri="postgress://db/x"),
                                     ["mlflow.tracking_uri", "postgress"]),
    "an override's negative log range, shown as given": (
        {"override": {"search": {"space": {"lr": {"log_uniform": [-1, 0.1]}}}}},
        ["search.space.lr", "[-1, 0.1]", "> 0"]),
    "mlflow unknown key": (lambda c: c["mlflow"].update(tracking="x"), ["mlflow.tracking"]),
    "unknown top-level key": (lambda c: c.update(serach={}), ["serach", "did you mean 'search'"]),
    "empty space in an override file": ({"override": {"search": {"space": {}}}},
                                        ["override.yaml", "search.space", "does not remove"]),
    "YAML syntax error in config.yaml": ({"config_text": "data:\n  source: [sklearn:digits\n"},
                                         ["config/config.yaml", "line"]),
    "YAML indentation error in config.yaml": ({"config_text": "data:\n  source: x\n target: y\n"},
                                              ["config/config.yaml", "line 3"]),
}


def test_the_corpus_is_large():
    assert len(CASES) >= 100


#: The cases run through the real `snakemake` (one of each kind of mistake, and every case that
#: needs Snakemake's own config handling: a replaced config.yaml, an override file). The others
#: call the Snakefile's parse-time entry point itself (alchemist.dag.check_or_exit) on the config
#: Snakemake would build (config.yaml updated by the --configfile, snakemake.utils.update_config):
#: the same code and message, without 3 s of Snakemake start-up per case.
THROUGH_SNAKEMAKE = {"missing file", "duplicate column names", "nan under fail", "misspelt data key",
                     "metric for the wrong task", "custom model that does not import",
                     "space bound outside the setting's range", "top_k above the trials",
                     "duplicate stage names", "unknown top-level key", "stray string in numeric target"}


def _snakemake_case(case: str) -> bool:
    return case in THROUGH_SNAKEMAKE or isinstance(CASES[case][0], dict)


def _one_error_line(stderr: str, expected: list[str]) -> None:
    errors = [line for line in stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, stderr[-3000:]
    for fragment in expected:
        assert fragment in errors[0], (errors[0], fragment)
    assert "Traceback" not in stderr


@pytest.mark.parametrize("case", [c for c in CASES if _snakemake_case(c)])
def test_bad_input_fails_cleanly_and_touches_nothing(prepared, case):
    edit, expected = CASES[case]
    wf = prepared
    before = wf.snapshot()
    main = wf.root / "config" / "config.yaml"
    original = main.read_text()
    args = []
    if isinstance(edit, dict) and "config_text" in edit:
        main.write_text(edit["config_text"])
    elif isinstance(edit, dict):
        (wf.root / "override.yaml").write_text(yaml.safe_dump(edit["override"]))
        args = ["--configfile", "config/config.yaml", "override.yaml"]
    else:
        config = yaml.safe_load(original)
        edit(config)
        (wf.root / "bad.yaml").write_text(yaml.safe_dump(config))
        args = ["--configfile", "bad.yaml"]
    try:
        proc = wf.run(*args, check=False)
    finally:
        main.write_text(original)
    assert proc.returncode != 0
    _one_error_line(proc.stderr, expected)
    assert wf.snapshot() == before


@pytest.mark.parametrize("case", [c for c in CASES if not _snakemake_case(c)])
def test_bad_input_is_refused_at_parse_time(prepared, case, monkeypatch, capsys, tmp_path):
    from snakemake.utils import update_config

    from alchemist.dag import check_or_exit

    edit, expected = CASES[case]
    before = prepared.snapshot()
    monkeypatch.chdir(prepared.root)
    config = yaml.safe_load((prepared.root / "config" / "config.yaml").read_text())
    edited = yaml.safe_load(yaml.safe_dump(config))
    edit(edited)
    update_config(config, edited)                  # what `--configfile bad.yaml` makes of it
    with pytest.raises(SystemExit) as stop:
        check_or_exit(config, cache_dir=tmp_path / "cache")
    assert stop.value.code == 2
    _one_error_line(capsys.readouterr().err, expected)
    assert prepared.snapshot() == before


def test_cli_reports_one_line_and_writes_nothing(tmp_path):
    from alchemist.cli import main

    out = tmp_path / "out"
    code = main(["prep", "--data-json", json.dumps({"source": "files/none.parquet", "target": "y"}),
                 "--out", str(out)])
    assert code == 2 and not out.exists()


def test_an_override_may_change_a_space_entrys_kind(prepared):
    """`lr: {uniform: …}` from the command line over the default `lr: {log_uniform: …}`: the entry
    is replaced whole (Snakemake alone would merge the two kinds into one invalid entry)."""
    before = prepared.snapshot()
    proc = prepared.run("-n", "--config", "search={space: {lr: {uniform: [0.001, 0.01]}}}", check=False)
    assert proc.returncode == 0 and "error" not in proc.stderr.lower(), proc.stderr[-2000:]
    assert prepared.snapshot() == before
