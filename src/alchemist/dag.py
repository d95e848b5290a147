"""Helpers the Snakefile and `workflow/rules/*.smk` call to wire the job graph.

Kept cheap on purpose: every cluster job re-parses the workflow, so nothing here trains, samples
or imports torch/mlflow; plans are read from the JSON files the `plan` rules wrote.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
from pathlib import Path

from alchemist.trial import canonical_json, short_hash


def _file_stamp(path: str | None) -> list | None:
    if not path or str(path).startswith(("sklearn:", "synthetic:")):
        return None
    if _is_callable(path):
        return _file_stamp(_callable_file(path))
    p = Path(path)
    if p.is_dir():                      # an image folder: every file's size and time
        return [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in sorted(p.rglob("*")) if f.is_file()]
    return [p.stat().st_size, p.stat().st_mtime_ns] if p.is_file() else None


def check_data(data_cfg: dict, cache_dir: Path, run: bool = True) -> dict | None:
    """Dry-run the prep stage in memory (no file written) unless this exact input passed before;
    the shapes a model needs of the data (alchemist.train.model_check.shapes_of). Without `run`
    (a cluster job) only what a passed check recorded (None if nothing)."""
    labels = data_cfg.get("target") if str(data_cfg.get("source")).lower().endswith(".npy") else None
    key = short_hash({"cfg": data_cfg, "source": _file_stamp(data_cfg.get("source")),
                      "test": _file_stamp(data_cfg.get("test_file")), "labels": _file_stamp(labels)}, 24)
    stamp = cache_dir / f"data-ok-{key}"
    try:
        return json.loads(stamp.read_text())["shapes"]
    except (OSError, ValueError, KeyError, TypeError):
        if not run:
            return None
    from alchemist.data.prep import prepare

    prepared = prepare(copy.deepcopy(data_cfg))
    for line in (prepared.manifest.get("hygiene") or {}).get("warnings", []):
        print(f"alchemist: warning: {line}", file=sys.stderr)      # once per data + config
    from alchemist.train.model_check import shapes_of

    shapes = shapes_of(prepared.manifest)
    cache_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(canonical_json({"cfg": data_cfg, "shapes": shapes}))
    return shapes


def check_models(config: dict, shapes: dict | None, cache_dir: Path, run: bool = True) -> list[str]:
    """Build every model the run will train once, on the data's shapes, unless this exact model
    config passed before (alchemist.train.model_check; torch is imported only then). Returns
    the searched model settings no model reads (the search leaves them out); without `run`
    (a cluster job re-reading the Snakefile) only what a passed check recorded."""
    from alchemist.search.stages import stage_specs

    search = config.get("search") or {}
    base, space, specs = config.get("train") or {}, search.get("space") or {}, stage_specs(search) or []
    files = [base.get("model"), base.get("init_from"), *[s.get("set", {}).get("init_from") for s in specs]]
    key = short_hash({"train": base, "space": space, "stages": specs, "shapes": shapes,
                      "files": [_file_stamp(f) for f in files if isinstance(f, str)]}, 24)
    stamp = cache_dir / f"models-ok-{key}"
    try:
        return list(json.loads(stamp.read_text())["unread"])
    except (OSError, ValueError, KeyError, TypeError):
        if not run or shapes is None:
            return []
    from alchemist.train.model_check import check_models as check

    unread = check(base, space, specs, shapes)
    for k in unread:
        print(f"alchemist: warning: search.space.{k}: model {base.get('model')!r} never reads "
              f"{k!r}; it is not searched (kept at {base.get(k)!r})", file=sys.stderr)
    cache_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(canonical_json({"unread": unread}))
    return unread


def check_config_file(path: str) -> None:
    """Before Snakemake reads the default config: a YAML mistake names the file and line."""
    from alchemist.errors import UserError
    from alchemist.startup import check_yaml

    try:
        check_yaml(path)
    except UserError as err:
        print(f"alchemist: config error: {err}", file=sys.stderr)
        sys.exit(2)


def check_or_exit(config: dict, workflow=None, cache_dir: Path = Path(".snakemake/alchemist")) -> dict:
    """Snakefile entry point: on a user mistake print one line and exit 2, before any job; after
    a killed run, the command that continues it (alchemist.startup)."""
    from alchemist.config import validate
    from alchemist.errors import UserError
    from alchemist.startup import check_overrides, print_hints
    from alchemist.track.backend import unreachable_warning

    main = workflow is None or getattr(workflow, "is_main_process", True)
    try:
        if workflow is not None:
            settings = getattr(workflow, "config_settings", None)
            check_overrides(list(getattr(workflow, "overwrite_configfiles", None) or []),
                            getattr(settings, "overwrite_config", None), config)
        validate(config)
        shapes = check_data(config["data"], cache_dir, run=main)
        unread = check_models(config, shapes, cache_dir, run=main)
        if unread:                          # left out of every space (search.ignore)
            search = config.setdefault("search", {})
            search["ignore"] = sorted({*(search.get("ignore") or []), *unread})
    except UserError as err:
        print(f"alchemist: config error: {err}", file=sys.stderr)
        sys.exit(2)
    if main and workflow is not None:
        print_hints()
        mlflow = config.get("mlflow") or {}
        if mlflow.get("enabled", True) and (warning := unreachable_warning(
                mlflow.get("tracking_uri"), mlflow.get("experiment", "alchemist"))):
            print(f"alchemist: warning: {warning}", file=sys.stderr)
    return config


def command_digest(command: str) -> str:
    """A rule's code trigger, for `params:`: the digest of every package file `alchemist
    <command>` executes (alchemist.provenance). Snakemake does not track programs called from
    `shell:`; params it compares, so an edit reruns exactly the jobs that run the edited code."""
    from alchemist.provenance import command_digest as digest

    return digest(command)


def split_suffix(data: dict) -> str:
    """`.parquet` (tables) or `.npz` (array sources): the prepared split files' suffix."""
    from alchemist.data.split_files import split_suffix as suffix

    return suffix(data)


def data_files(data: dict) -> list[str]:
    """The user's data files (source, test_file; a .npy source's labels file; an image folder's
    images) as prep inputs: editing one reruns prep."""
    source = str(data.get("source") or "")
    if source and Path(source).is_dir():
        from alchemist.data.image_folder import image_files
        from alchemist.errors import UserError

        try:
            return [str(f) for f, _ in image_files(source)]
        except UserError:
            return []                   # prep's parse-time check names the problem
    labels = data.get("target") if source.lower().endswith(".npy") else None
    files = [str(v) for v in (data.get("source"), data.get("test_file"), labels)
             if v and not str(v).startswith(("sklearn:", "synthetic:"))]
    return [(_callable_file(f) if _is_callable(f) else f) for f in files
            if not _is_callable(f) or _callable_file(f)]     # a callable source: its module file


def _is_callable(source: str) -> bool:
    from alchemist.data.callable_source import is_callable_source

    return is_callable_source(source) and not Path(source).exists()


def _callable_file(source: str) -> str | None:
    from alchemist.data.callable_source import module_file

    return module_file(source)


PARAMS_DIR = Path(".snakemake/alchemist/params")


def params_file(obj) -> str:
    """A settings object as a content-addressed JSON file (.snakemake/alchemist/params/<sha>.json)
    whose path is the rule's `params:` value and the job's input: Snakemake compares params by
    repr(), so the same content is the same path (no rerun), a change a new one — and a rerun's
    reason is one line naming two short paths, not kilobytes of JSON."""
    text = canonical_json(obj)
    path = PARAMS_DIR / f"{hashlib.sha256(text.encode()).hexdigest()[:20]}.json"
    if not path.exists():
        from alchemist.atomic import write_text

        write_text(path, text + "\n")
    return str(path)


_JSON_CACHE: dict[str, tuple[tuple[int, int], dict]] = {}


def read_json(path: str | Path) -> dict:
    """Parsed JSON, cached by (mtime, size): input functions ask for the same plan per pack."""
    stat = os.stat(path)
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _JSON_CACHE.get(str(path))
    if cached is None or cached[0] != stamp:
        cached = (stamp, json.loads(Path(path).read_text()))
        _JSON_CACHE[str(path)] = cached
    return cached[1]


# ---------------------------------------------------------------- search stages and packs
def budget_config(config: dict) -> str:
    """What the budget plan depends on (train + search settings), as a params_file."""
    search = config.get("search", {})
    return params_file({"train": config.get("train", {}),
                        "search": {**search, "space": _canonical_space(search.get("space"))}})


def measured_packs(config: dict) -> bool:
    """`search.pack_size: auto`: plans probe the training device, so they run where training
    runs (not as local rules) and wait for the prepared data."""
    return (config.get("search") or {}).get("pack_size", "auto") == "auto"


TRAINING_KINDS = ("search", "halving", "repeat")


def stages(config: dict):
    """The parsed `search.stages` (name → Stage), in config order."""
    from alchemist.search.stages import parse_search

    return parse_search(config).stages


def _canonical_space(space: dict | None) -> dict | None:
    """The space with choice/grid lists in canonical order (their YAML order must not matter)."""
    from alchemist.search.space import LIST_KINDS, value_order

    if not isinstance(space, dict):
        return space
    out = {}
    for key, spec in space.items():
        if isinstance(spec, dict):
            spec = {k: sorted(v, key=value_order) if k in LIST_KINDS and isinstance(v, list) else v
                    for k, v in spec.items()}
        out[key] = spec
    return out


def plan_config(config: dict, stage: str) -> str:
    """Everything a stage's plan depends on besides its input tables, as a params_file: it is
    both the plan job's rerun trigger (params) and the config the job reads. Later stages'
    settings are left out, so changing them never reruns this stage."""
    from alchemist.search.stages import stage_specs

    search = config.get("search", {})
    specs = stage_specs(search) or []
    upto = next(i for i, s in enumerate(specs) if s.get("name") == stage)
    stages = [{k: (_canonical_space(v) if k == "space" else v) for k, v in s.items()}
              for s in specs[: upto + 1]]
    return params_file({"train": config.get("train", {}),
                        "search": {"space": _canonical_space(search.get("space")),
                                   "pack_size": search.get("pack_size"),
                                   "seed": search.get("seed"), "stages": stages,
                                   **({"budget": search["budget"]} if search.get("budget") is not None
                                      else {}),
                                   **({"ignore": search["ignore"]} if search.get("ignore") else {})}})


def plan_packs(plan_file: str) -> dict[str, list[str]]:
    return read_json(plan_file)["packs"]


def pack_trials(plan_file: str, pack: str) -> str:
    """The pack's trial ids: its rerun trigger (each id hashes the trial's full settings)."""
    return " ".join(read_json(plan_file)["packs"][pack])


def pack_split(plan_file: str, pack: str) -> str:
    plan = read_json(plan_file)
    return plan["trials"][plan["packs"][pack][0]].get("data", "train")


def pack_weights(plan_file: str, pack: str) -> list[str]:
    """The pack's `init_from` weights file (transfer learning) as an input: editing it reruns."""
    plan = read_json(plan_file)
    path = plan["trials"][plan["packs"][pack][0]].get("init_from")
    return [path] if path else []


# ---------------------------------------------------------------- tracking and the lockbox
def quote(text: str) -> str:
    import shlex

    return shlex.quote(str(text))


def config_hash(config: dict) -> str:
    return short_hash({k: v for k, v in config.items() if k not in ("final_test", "unseal_reason")}, 16)


def tracking_args(config: dict) -> str:
    mlflow = config.get("mlflow", {})
    if not mlflow.get("enabled", True):
        return "--no-tracking"
    uri = f"--tracking-uri {quote(mlflow['tracking_uri'])} " if mlflow.get("tracking_uri") else ""
    return f"{uri}--experiment {quote(mlflow.get('experiment', 'alchemist'))}"


_GATE_PASSED = False


def lockbox_gate(config: dict, data_dir: str, results: str) -> None:
    """Refuse a second test-set opening before any job runs (checked once per Snakemake run):
    print why, citing the first opening, and exit 3."""
    global _GATE_PASSED
    if _GATE_PASSED:
        return
    from alchemist.lockbox.evaluate import check
    from alchemist.lockbox.policy import Refused
    from alchemist.track.ledger import LockboxLedger

    mlflow = config.get("mlflow", {})      # its copy is read even with tracking off, if it exists
    remote = LockboxLedger(mlflow.get("tracking_uri"), mlflow.get("experiment", "alchemist"),
                           Path(results), read_only=not mlflow.get("enabled", True))
    try:
        check(Path(data_dir), config.get("unseal_reason"), remote,
              Path(results) / "lockbox" / "ledger.jsonl", config.get("data"))
    except Refused as err:
        print(f"alchemist: lockbox: refused: {err}", file=sys.stderr)
        sys.exit(3)
    _GATE_PASSED = True


def ledger_digest(*paths: str) -> str:
    """Hash of the lockbox ledger files (or 'none'): a params value that changes when one grows."""
    h = hashlib.sha256()
    for p in map(Path, paths):
        h.update(p.read_bytes() if p.exists() else b"<none>")
    return h.hexdigest()[:16] if any(Path(p).exists() for p in paths) else "none"


def write_summary(config: dict, results: str) -> None:
    """After a successful run (the Snakefile's onsuccess): results/summary.md and the report's
    front page (results/summary.rst) written, and the summary printed as the run's last lines."""
    from alchemist.analysis import summary
    from alchemist.atomic import write_text

    content = summary.build(Path(results), config)
    if content is None:
        return
    write_text(Path(results) / "summary.md", summary.markdown(content))
    write_text(Path(results) / "summary.rst", summary.rst(content))
    print("\n" + "─" * 78 + "\n" + "\n".join(summary.lines(content)) + "\n" + "─" * 78, flush=True)
