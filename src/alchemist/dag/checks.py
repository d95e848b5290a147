"""The Snakefile's way in: a user mistake is one line and exit 2 before any job runs — the config
file's YAML, the schema and settings (alchemist.config), a dry run of the data (prep in memory),
every model built once on the data's shapes; each check cached by what it read, so a second
`snakemake` costs nothing."""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

from alchemist.dag.triggers import callable_file, is_callable
from alchemist.trial import canonical_json, short_hash


def _file_stamp(path: str | None) -> list | None:
    if not path or str(path).startswith(("sklearn:", "synthetic:")):
        return None
    if is_callable(path):
        return _file_stamp(callable_file(path))
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


