"""The package's shape (issue 11): no import cycle, the layer rules, one definition of the training
defaults, and rerun triggers computed from each command's import closure."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from alchemist import provenance
from alchemist.trial import TRIAL_DEFAULTS
from conftest import REPO, Workflow, nothing_to_do

SRC = REPO / "src" / "alchemist"


def _module(path: Path) -> str:
    parts = ["alchemist", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _all_imports(path: Path) -> set[str]:
    """Every module name a file imports (third-party too), anywhere in the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


FILES = {_module(p): p for p in sorted(SRC.rglob("*.py"))}


def _graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (lazily or not), as provenance reads them."""
    return {m: {n for n in provenance.imports_of(p) if n in FILES and n != m} for m, p in FILES.items()}


def test_no_import_cycle():
    graph, state, cycles = _graph(), {}, []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, cycles


@pytest.mark.parametrize("room, forbidden", [
    ("alchemist.train", ("mlflow", "snakemake", "optuna", "alchemist.track", "alchemist.search",
                         "alchemist.lockbox", "alchemist.dag")),
    ("alchemist.search", ("torch", "mlflow", "alchemist.train", "alchemist.track")),
    ("alchemist.analysis", ("torch", "mlflow", "matplotlib", "alchemist.train", "alchemist.track",
                            "alchemist.report")),
    ("alchemist.report", ("torch", "mlflow", "alchemist.train", "alchemist.track", "alchemist.search",
                          "alchemist.lockbox")),
    ("alchemist.data", ("torch", "mlflow", "snakemake", "alchemist.train", "alchemist.track")),
    ("alchemist.lockbox", ("mlflow", "snakemake")),
])
def test_rooms_never_import_what_they_must_not_know(room, forbidden):
    bad = [(m, n) for m, p in FILES.items() if m == room or m.startswith(room + ".")
           for n in _all_imports(p) if any(n == f or n.startswith(f + ".") for f in forbidden)]
    assert not bad, bad


def test_only_track_imports_mlflow():
    importers = sorted(m for m, p in FILES.items()
                       if any(n == "mlflow" or n.startswith("mlflow.") for n in _all_imports(p)))
    assert importers and all(m.startswith("alchemist.track.") for m in importers), importers


def test_only_the_lockbox_reads_the_test_split():
    """The test split is read (alchemist.data.split_files.read_split) by the lockbox's evaluation,
    to score, and by the guard, only to confirm the candidates its near-row keys point at (a
    query that finds none reads nothing); no module names a split file but split_files."""
    reading = sorted(m for m, p in FILES.items() if re.search(r'read_split\([^)]*"test"', p.read_text()))
    assert reading == ["alchemist.data.guard", "alchemist.lockbox.evaluate"], reading
    locating = sorted(m for m, p in FILES.items() if re.search(r'split_path\([^)]*"test"', p.read_text()))
    assert locating == ["alchemist.data.guard"], locating
    naming = sorted(m for m, p in FILES.items() if re.search(r'"test\.(parquet|npz)"', p.read_text()))
    assert not naming, naming
    assert "read_parquet" not in FILES["alchemist.data.guard"].read_text()


def test_files_stay_between_50_and_350_lines_and_no_catch_all():
    sizes = {m: len(p.read_text().splitlines()) for m, p in FILES.items()}
    assert not [m for m, n in sizes.items() if n > 350], sizes
    assert not [m for m in FILES if m.rsplit(".", 1)[-1] in ("utils", "helpers", "misc", "common")]


def test_schema_training_defaults_equal_the_one_definition():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    train = schema["properties"]["train"]["properties"]
    assert set(train) == set(TRIAL_DEFAULTS)
    assert {k: spec.get("default") for k, spec in train.items()} == TRIAL_DEFAULTS


def test_closure_follows_lazy_imports_and_digest_follows_content(tmp_path, monkeypatch):
    pkg = tmp_path / "alchemist"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from alchemist.sub import b\n")
    (pkg / "sub" / "b.py").write_text("from . import c\n")
    (pkg / "sub" / "c.py").write_text("x = 1\n")
    (pkg / "unused.py").write_text("y = 2\n")
    monkeypatch.setattr(provenance, "PACKAGE_DIR", pkg)
    files = provenance.closure("alchemist.a")
    assert [f.relative_to(pkg).as_posix() for f in files] == [
        "__init__.py", "a.py", "sub/__init__.py", "sub/b.py", "sub/c.py"]
    before = provenance.digest(files)
    import os

    os.utime(pkg / "sub" / "c.py", (1, 1))
    (pkg / "unused.py").write_text("y = 3\n")
    assert provenance.digest(provenance.closure("alchemist.a")) == before
    (pkg / "sub" / "c.py").write_text('"""What c holds."""\n\nx = (  # a comment\n    1)\n')
    assert provenance.digest(provenance.closure("alchemist.a")) == before    # docs and layout: no rerun
    (pkg / "sub" / "c.py").write_text("x = 2\n")
    after = provenance.digest(provenance.closure("alchemist.a"))
    assert after != before
    # a new process reads the parses back from __pycache__ (no file parsed again) and still sees edits
    assert (pkg / "__pycache__" / "alchemist-provenance.json").is_file()
    monkeypatch.setattr(provenance, "_PARSED", {})
    monkeypatch.setattr(provenance.ast, "parse", lambda *a, **k: pytest.fail("parsed again"))
    assert provenance.digest(provenance.closure("alchemist.a")) == after
    monkeypatch.undo()
    monkeypatch.setattr(provenance, "PACKAGE_DIR", pkg)
    (pkg / "sub" / "c.py").write_text("x = 3\n")
    assert provenance.digest(provenance.closure("alchemist.a")) not in (before, after)


# ------------------------------------------------------------------ rerun triggers, end to end
#: the command each rule of `rule all` runs (workflow/rules/*.smk)
RULE_COMMAND = {"prepare_data": "prep", "plan_round": "plan", "train_pack": "train",
                "aggregate_round": "aggregate", "aggregate_stage": "aggregate",
                "select_winner": "select", "publish_stage": "publish", "diagnostics": "diagnostics",
                "lockbox_status": "lockbox"}


def _scheduled(out: str) -> set[str]:
    """Rules a dry run schedules (for any reason)."""
    return set(re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", out, re.M)) - {"all"}


def _code_changed(wf: Workflow, monkeypatch) -> set[str]:
    """Rules with a job whose recorded params (Snakemake's metadata) lack the digest of its
    command's closure in the workflow's copy of the package: their code trigger changed."""
    import json

    monkeypatch.setattr(provenance, "PACKAGE_DIR", (wf.root / "src" / "alchemist").resolve())
    changed = set()
    for path in (wf.root / ".snakemake/metadata").iterdir():
        record = json.loads(path.read_text())
        command = RULE_COMMAND.get(record["rule"])
        if command and repr(provenance.command_digest(command)) not in record["params"]:
            changed.add(record["rule"])
    monkeypatch.undo()
    return changed


def _rules_run(wf: Workflow) -> set[str]:
    """Rules whose jobs made the current outputs (Snakemake's metadata records each output's rule)."""
    import json

    return {json.loads(p.read_text())["rule"] for p in (wf.root / ".snakemake/metadata").iterdir()}


@pytest.fixture(scope="module")
def tiny_with_src(tmp_path_factory):
    """A completed tiny pipeline whose jobs run the package copied beside its Snakefile."""
    wf = Workflow(tmp_path_factory.mktemp("arch") / "wf")
    config = wf.config
    config["data"]["source"] = "sklearn:iris"
    config["train"].update({"hidden": [8], "epochs": 2, "early_stopping": False})
    config["search"].update(pack_size=4, space={"lr": {"log_uniform": [1e-3, 1e-1]}}, stages=[
        {"name": "coarse", "kind": "search", "sampler": "random", "trials": 4, "data": "train_coarse"},
        {"name": "again", "kind": "repeat", "from": "coarse", "top_n": 1, "seeds": 2},
        {"name": "pick", "kind": "select", "from": "again"}])
    config["mlflow"]["enabled"] = False
    wf.write_config(config)
    wf.run()
    wf.rules = _rules_run(wf)
    assert {"train_pack", "publish_stage", "diagnostics"} <= wf.rules, wf.rules
    return wf


@pytest.mark.slow
@pytest.mark.parametrize("module, some_expected", [
    ("train/losses.py", {"train_pack", "diagnostics"}),
    ("report/plots.py", {"publish_stage", "diagnostics"}),
    ("analysis/stats.py", {"plan_round", "aggregate_stage", "select_winner", "publish_stage"}),
    ("lockbox/policy.py", {"lockbox_status"}),
    ("dag/triggers.py", set()),           # the Snakefile's helpers: no job runs them
])
def test_an_edit_reruns_exactly_the_jobs_whose_command_imports_it(tiny_with_src, module, some_expected,
                                                                   monkeypatch):
    wf = tiny_with_src
    importers = {rule for rule, command in RULE_COMMAND.items() if rule in wf.rules and module in {
        f.relative_to(provenance.PACKAGE_DIR).as_posix() for f in provenance.command_files(command)}}
    assert some_expected <= importers and (importers or not some_expected)
    assert _code_changed(wf, monkeypatch) == set()
    path = wf.root / "src" / "alchemist" / module
    original = path.read_text()
    try:
        path.write_text(original + "AN_EDIT = 1\n")
        assert _code_changed(wf, monkeypatch) == importers
        proc = wf.run("-n")
        if importers:   # each importer's jobs rerun (a downstream one reports its input as reason)
            assert importers <= _scheduled(proc.stdout), proc.stdout[-3000:]
        else:
            assert nothing_to_do(proc), proc.stdout[-3000:]
    finally:
        path.write_text(original)
    assert nothing_to_do(wf.run("-n"))


def test_the_metric_direction_has_one_home():
    """Whether the selection metric is minimised is decided by alchemist.train.metrics.direction
    (from the loss) and read back from a table's `mode` column by analysis.tables.table_mode
    alone: no module derives it again."""
    deriving = sorted(m for m, p in FILES.items() if re.search(r'loss\s*[=!]=\s*"mse"', p.read_text()))
    assert deriving == ["alchemist.train.metrics"], deriving
    reading = sorted(m for m, p in FILES.items() if re.search(r'\["mode"\]\s*==|\["mode"\]\.iloc', p.read_text()))
    assert not reading, reading


def test_the_stage_grammar_in_the_schema_and_in_stages_py_agree():
    """workflow/schemas/config.schema.yaml validates a stage; search/stages.py parses it: the
    kinds, each kind's keys and its samplers must be the same in both."""
    import yaml

    from alchemist.search.stages import ALLOWED_KEYS, KINDS, SAMPLERS

    schema = yaml.safe_load((SRC.parents[1] / "workflow/schemas/config.schema.yaml").read_text())
    stage = schema["$defs"]["search_stage"]
    assert stage["properties"]["kind"]["enum"] == list(KINDS)
    for branch in stage["allOf"]:
        kind = branch["if"]["properties"]["kind"]["const"]
        props = branch["then"]["properties"]
        keys = {k for k, v in props.items() if v != {"not": {}} and "not" not in v}
        assert keys == ALLOWED_KEYS[kind], (kind, keys ^ ALLOWED_KEYS[kind])
        if "sampler" in props:
            told_ok = kind == "search"
            assert props["sampler"]["enum"] == [n for n, told in SAMPLERS.items() if told_ok or not told], kind


#: Private names of other libraries used on purpose, each with the comment beside it that says
#: why (a measured gain, or no public call exists); anything else private is refused.
PRIVATE_ALLOWED = {
    ("alchemist.train.optim", "torch._fused_sgd_"), ("alchemist.train.optim", "torch._fused_adam_"),
    ("alchemist.train.optim", "torch._fused_adamw_"), ("alchemist.train.optim", "torch._fused_adagrad_"),
    ("alchemist.train.optim", "torch._dynamo"), ("alchemist.train.runtime", "torch._C"),
    ("alchemist.train.runtime", "torch._inductor"),
    ("alchemist.train.custom", "init._calculate_fan_in_and_fan_out"),
    ("alchemist.track.writer", "client._tracking_client"),
    ("alchemist.track.backend", "SqlAlchemyStore._engine_map"),
    ("alchemist.track.backend", "SqlAlchemyStore._engine_map_lock"),
}


def test_private_names_of_other_libraries_only_from_the_allow_list():
    found = set()
    for module, path in FILES.items():
        text = path.read_text()
        found |= {(module, m) for m in re.findall(r"\b(?:torch|init|client|SqlAlchemyStore|mlflow|optuna|"
                                                  r"snakemake|pd|np)\._\w+", text)}
        found |= {(module, f"import {m}") for m in re.findall(r"from \S+ import (_\w+)", text)}
    assert found and found <= PRIVATE_ALLOWED, sorted(found - PRIVATE_ALLOWED)   # (the scan finds them)


def test_what_the_report_shows_is_decided_in_one_folder():
    """alchemist.report decides what a researcher sees: every report() flag in the workflow takes
    its words from report.contents (no rule names a category or caption of its own), each
    section there is used by exactly one rule and has its caption, the front page comes from
    there, and only that folder draws (matplotlib)."""
    from alchemist.report import contents

    workflow = {p.name: p.read_text() for p in [REPO / "Snakefile", *sorted((REPO / "workflow/rules").glob("*.smk"))]}
    flags = [(name, m) for name, text in workflow.items() for m in re.findall(r"\breport\((.*)\)", text)]
    assert flags and all("**report_contents.entry(" in args for _, args in flags), flags
    assert not [n for n, text in workflow.items() if re.search(r"\b(category|caption)\s*=", text)]
    used = [re.search(r'entry\("(\w+)"\)', args).group(1) for _, args in flags]
    assert sorted(used) == sorted(contents.SECTIONS), used
    assert all((contents.CAPTIONS / s.caption).is_file() for s in contents.SECTIONS.values())
    assert "report: report_contents.front_page(RESULTS)" in workflow["Snakefile"]
    assert not (REPO / "workflow/report").exists()
    drawing = sorted(m for m, p in FILES.items() if "matplotlib" in _all_imports(p) or
                     any(n.startswith("matplotlib.") for n in _all_imports(p)))
    assert drawing and all(m.startswith("alchemist.report.") for m in drawing), drawing


def test_every_public_function_says_what_it_returns_or_decides():
    """A docstring on every public function and method (issue 24, point 7)."""
    missing = []
    for module, path in FILES.items():
        def walk(node, owner=""):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and not child.name.startswith("_"):
                    if ast.get_docstring(child) is None:
                        missing.append(f"{module}.{owner}{child.name}")
                elif isinstance(child, ast.ClassDef) and not child.name.startswith("_"):
                    walk(child, child.name + ".")
        walk(ast.parse(path.read_text()))
    assert len(FILES) > 100 and not missing, missing


def test_default_paths_come_from_the_results_layout():
    """No module but alchemist.results_layout names a default path under `results` (issue 24,
    point 7): commands resolve theirs from `--results`, libraries take them as arguments."""
    naming = sorted(m for m, p in FILES.items() if re.search(r'''Path\(\s*["']results|default=["']results''', p.read_text()))
    assert naming == ["alchemist.results_layout"], naming
