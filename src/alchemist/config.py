"""Load and check the pipeline config before any job is scheduled.

The Snakefile calls `check_or_exit(config, workflow)`: Snakemake's `validate` fills the schema's
defaults, a schema violation becomes ONE line naming the offending key, and the data section is
dry-run through the prep stage (cached by config + file stamps) so that a missing file, column or
class fails at parse time — before Snakemake deletes or rewrites any earlier result.
"""
from __future__ import annotations

import copy
import difflib
import json
import sys
from pathlib import Path

import yaml

from alchemist.errors import UserError
from alchemist.trial import canonical_json, short_hash

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def _key_path(error) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _validator(schema_path: Path):
    """A validator that resolves `$ref`s to sibling schema files, as Snakemake's `validate` does."""
    import jsonschema
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    def retrieve(uri: str):
        path = Path(uri.removeprefix("file://"))
        return DRAFT202012.create_resource(yaml.safe_load(path.read_text()))

    schema = yaml.safe_load(schema_path.read_text())
    schema["$id"] = schema_path.resolve().as_uri()
    return jsonschema.Draft202012Validator(schema, registry=Registry(retrieve=retrieve))


def schema_error_line(config: dict, schema_path: Path = SCHEMA) -> str | None:
    """The most relevant schema violation as one line, or None when the config is valid."""
    import jsonschema

    validator = _validator(schema_path)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return None
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        where = _key_path(error)
        prefix = "" if where == "(top level)" else where + "."
        close = difflib.get_close_matches(extra[0], allowed, n=1)
        hint = f"did you mean '{prefix}{close[0]}'?" if close else f"allowed: {', '.join(allowed)}"
        return f"config key '{prefix}{extra[0]}' is not allowed; {hint}"
    return f"config key '{_key_path(error)}': {error.message}"


def validate(config: dict, schema_path: Path = SCHEMA) -> dict:
    """Validate `config` in place against the schema, filling defaults; raise UserError."""
    line = schema_error_line(config, schema_path)
    if line:
        raise UserError(line)
    from snakemake.utils import validate as snakemake_validate  # fills in the defaults

    snakemake_validate(config, str(schema_path), set_default=True)
    from alchemist.search.stages import parse_search  # what a schema cannot check (bounds, `from`)

    parse_search(config)
    return config


def _file_stamp(path: str | None) -> list | None:
    if not path or str(path).startswith("sklearn:"):
        return None
    p = Path(path)
    return [p.stat().st_size, p.stat().st_mtime_ns] if p.is_file() else None


def check_data(data_cfg: dict, cache_dir: Path) -> None:
    """Dry-run the prep stage in memory (no file written) unless this exact input passed before."""
    key = short_hash({"cfg": data_cfg, "source": _file_stamp(data_cfg.get("source")),
                      "test": _file_stamp(data_cfg.get("test_file"))}, 24)
    stamp = cache_dir / f"data-ok-{key}"
    if stamp.exists():
        return
    from alchemist.prep import prepare

    prepare(copy.deepcopy(data_cfg))
    cache_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(canonical_json(data_cfg))


def check_or_exit(config: dict, workflow=None, cache_dir: Path = Path(".snakemake/alchemist")) -> dict:
    """Snakefile entry point: on a user mistake print one line and exit 2, before any job."""
    try:
        validate(config)
        if workflow is None or getattr(workflow, "is_main_process", True):
            check_data(config["data"], cache_dir)
    except UserError as err:
        print(f"alchemist: config error: {err}", file=sys.stderr)
        sys.exit(2)
    return config


def load_config_file(path: Path) -> dict:
    """Read a YAML or JSON config file (the CLI's `--config`) and validate it."""
    text = Path(path).read_text()
    config = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    return validate(config or {})
