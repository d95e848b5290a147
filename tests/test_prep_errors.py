"""Bad input: one clear line naming the culprit, non-zero exit, nothing under results/ touched.

Each case runs the real `snakemake` on a workflow whose results/ already holds a good prep, so
the test proves both the message and that earlier results survive.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

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
    nan = good.copy()
    nan.loc[3, "a"] = np.nan
    nan.to_csv(files / "nan.csv", index=False)
    inf = good.copy()
    inf.loc[5, "b"] = np.inf
    inf.to_parquet(files / "inf.parquet")
    return wf


CASES = {
    "missing file": ({"source": "files/absent.csv", "target": "y"}, ["files/absent.csv", "not found"]),
    "unknown builtin": ({"source": "sklearn:mnistt"}, ["sklearn:mnistt"]),
    "missing target column": ({"source": "files/good.csv", "target": "label"}, ["'label'", "not found"]),
    "single class": ({"source": "files/one_class.csv", "target": "y"}, ["'y'", "single class"]),
    "too few rows": ({"source": "files/tiny.csv", "target": "y"}, ["too few rows"]),
    "non-numeric regression target": ({"source": "files/good.csv", "target": "word", "task": "regression"},
                                      ["'word'", "not numeric"]),
    "nan under fail": ({"source": "files/nan.csv", "target": "y", "missing": "fail"}, ["'a'", "missing"]),
    "inf under fail": ({"source": "files/inf.parquet", "target": "y", "missing": "fail"}, ["'b'", "non-finite"]),
    "misspelt key": ({"sourse": "sklearn:digits"}, ["data.sourse", "did you mean 'data.source'"]),
    "fraction out of range": ({"test_fraction": 1.5}, ["data.test_fraction"]),
    "negative fraction": ({"val_fraction": -0.1}, ["data.val_fraction"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_cleanly_and_touches_nothing(prepared, case):
    data, expected = CASES[case]
    wf = prepared
    before = wf.snapshot()
    base = wf.config
    config = dict(base, data={k: v for k, v in base["data"].items() if k != "source"} | data
                  if "sourse" in data else base["data"] | data)
    bad = wf.root / "bad.yaml"
    import yaml
    bad.write_text(yaml.safe_dump(config))
    proc = wf.run("--configfile", str(bad), check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, proc.stderr
    for fragment in expected:
        assert fragment in errors[0], errors[0]
    assert "Traceback" not in proc.stderr
    assert wf.snapshot() == before


def test_cli_reports_one_line_and_writes_nothing(tmp_path):
    from alchemist.cli import main

    out = tmp_path / "out"
    code = main(["prep", "--data-json", '{"source": "files/none.parquet", "target": "y"}',
                 "--out", str(out)])
    assert code == 2 and not out.exists()
