"""The pipeline config: validated against workflow/schemas/config.schema.yaml, the schema's
defaults filled in (Snakemake's `validate`), a violation reported as ONE line naming the offending
key, then what a schema cannot say (the search stages) checked by alchemist.search.stages, and the
settings written outside `train:` by alchemist.setting_checks.
The Snakefile's parse-time checks (this plus a dry run of the data) are alchemist.dag's.
"""
from __future__ import annotations

import difflib
import functools
import json
import re
from pathlib import Path

import yaml

from alchemist.errors import UserError

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def _key_path(error, config=None) -> str:
    """Dotted path of the offending key; a stage by its name (`search.stages.fine.top_k`)."""
    parts = [str(p) for p in error.absolute_path]
    if parts[:2] == ["search", "stages"] and len(parts) > 2 and parts[2].isdigit():
        try:
            name = config["search"]["stages"][int(parts[2])].get("name")
        except (KeyError, IndexError, TypeError, AttributeError):
            name = None
        if isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_-]+", name):
            parts[2] = name
    return ".".join(parts) or "(top level)"



@functools.lru_cache(maxsize=4)
def _validator(schema_path: Path):
    """A validator that resolves `$ref`s to sibling schema files, as Snakemake's `validate` does
    (built once per process: the schema is read with libyaml when PyYAML has it)."""
    import jsonschema
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    def retrieve(uri: str):
        path = Path(uri.removeprefix("file://"))
        return DRAFT202012.create_resource(_load_yaml(path.read_text()))

    schema = _load_yaml(schema_path.read_text())
    schema["$id"] = schema_path.resolve().as_uri()
    return jsonschema.Draft202012Validator(schema, registry=Registry(retrieve=retrieve))


def _load_yaml(text: str):
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


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
        where = _key_path(error, config)
        prefix = "" if where == "(top level)" else where + "."
        close = difflib.get_close_matches(extra[0], allowed, n=1)
        hint = f"did you mean '{prefix}{close[0]}'?" if close else f"allowed: {', '.join(allowed)}"
        return f"config key '{prefix}{extra[0]}' is not allowed; {hint}"
    return f"config key '{_key_path(error, config)}': {error.message}"


def _errors(errors):
    for error in errors:
        yield error
        yield from _errors(error.context or ())


def coerce_strings(config: dict, schema_path: Path = SCHEMA) -> dict:
    """Snakemake 9 hands nested `--config` values over as strings (`--config mlflow='{enabled:
    false}'` gives 'false'): a string the schema refuses is read as YAML, in place, when that
    gives another value (a bool, number, null or list). Strings the schema accepts stay."""
    validator = _validator(schema_path)
    for _ in range(100):                          # each pass fixes every value it can reach
        changed = False
        for error in _errors(validator.iter_errors(config)):
            if not isinstance(error.instance, str) or not error.absolute_path:
                continue
            try:
                value = yaml.safe_load(error.instance)
            except yaml.YAMLError:
                continue
            *parents, last = error.absolute_path
            holder = config
            for key in parents:
                holder = holder[key]
            if isinstance(value, str) or holder[last] != error.instance:
                continue
            holder[last], changed = value, True
        if not changed:
            return config
    return config


def validate(config: dict, schema_path: Path = SCHEMA) -> dict:
    """Validate `config` in place against the schema, filling defaults; raise UserError. Strings
    from nested `--config` values are first read as the types the schema expects."""
    coerce_strings(config, schema_path)
    line = schema_error_line(config, schema_path)
    if line:
        raise UserError(line)
    from snakemake.utils import validate as snakemake_validate  # fills in the defaults

    snakemake_validate(config, str(schema_path), set_default=True)
    from alchemist.search.stages import parse_search  # what a schema cannot check (bounds, `from`)
    from alchemist.setting_checks import check_settings

    search = parse_search(config)
    check_settings(config, search, _validator(schema_path).schema["properties"]["train"])
    return config


def load_config_file(path: Path) -> dict:
    """Read a YAML or JSON config file (the CLI's `--config`) and validate it."""
    text = Path(path).read_text()
    config = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    return validate(config or {})
