"""What a job would refuse, refused when the config is read: every training setting written
outside `train:` — the search space's bounds and values, a stage's `set:` — is held to the same
JSON-Schema property as in `train:` (workflow/schemas/config.schema.yaml: `dropout: {uniform:
[0, 1.5]}` fails here, not in 28 training jobs); a custom model (`module:callable`) must import;
`top_k` / `top_n` may not ask for more trials than the stage they read plans.

Called by alchemist.config.validate after the schema and the search stages are parsed.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from alchemist.errors import UserError
from alchemist.search.space import LIST_KINDS, RANGE_KINDS, Param, parse_space
from alchemist.search.stages import SearchConfig, Stage


def check_settings(config: dict, search: SearchConfig, train_schema: dict) -> None:
    """UserError naming the key when a written setting breaks its schema property, a custom
    model does not import, or top_k/top_n exceed the planned trials."""
    props = train_schema.get("properties", {})
    values: list[tuple[str, str, Any]] = []          # (where, setting, value)
    spaces = {"search.space": parse_space(search.space_raw)} if search.space_raw else {}
    for stage in search.stages.values():
        where = f"search.stages.{stage.name}"
        values += [(f"{where}.set.{k}", k, v) for k, v in stage.set.items()]
        if stage.space:
            spaces[f"{where}.space"] = parse_space(stage.space, f"{where}.space")
    for where, space in spaces.items():
        for key, p in space.items():
            values += [(f"{where}.{key}", key, v) for v in _param_values(p)]
    for where, key, value in values:
        if key in props:
            _check_value(where, key, value, props[key])
    models = {("train.model", (config.get("train") or {}).get("model"))}
    models |= {(w, v) for w, k, v in values if k == "model"}
    for where, model in sorted(models, key=str):
        if isinstance(model, str) and ":" in model:
            check_model_imports(model, where)
    weights = {("train.init_from", (config.get("train") or {}).get("init_from"))}
    weights |= {(w, v) for w, k, v in values if k == "init_from"}
    for where, path in sorted(weights, key=str):
        if path and not os.path.isfile(path):
            raise UserError(f"{where}: weights file not found: {path}")
    _check_counts(search)


def _param_values(p: Param) -> list:
    if p.kind in RANGE_KINDS:
        return [p.low, p.high]
    return list(p.values) if p.kind in LIST_KINDS or p.kind == "fixed" else []


def _check_value(where: str, key: str, value: Any, prop: dict) -> None:
    import jsonschema

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(prop).iter_errors(value))
    if error is not None:
        raise UserError(f"{where}: {value!r} is not a valid train.{key} ({error.message})")


def check_model_imports(model: str, where: str = "train.model") -> None:
    """`package.module:callable` imports from the working directory, as in a training job."""
    module_name, _, attr = model.partition(":")
    sys.path.insert(0, os.getcwd())
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except Exception as err:                    # noqa: BLE001 - any failure is the user's module's
        raise UserError(f"{where}: cannot import model {model!r}: {type(err).__name__}: {err}") from None
    finally:
        sys.path.remove(os.getcwd())
    if not callable(factory):
        raise UserError(f"{where}: {model!r} is not callable")


def planned_trials(stage: Stage, search: SearchConfig) -> int | None:
    """How many trials a stage plans (None when it depends on the space: grid, halving)."""
    if stage.kind == "search" and stage.sampler == "random":
        return stage.trials
    if stage.kind == "search" and stage.sampler in ("tpe", "gp"):
        return stage.rounds * stage.round_size
    if stage.kind == "repeat":
        return stage.top_n * stage.seeds
    return None


def _check_counts(search: SearchConfig) -> None:
    for stage in search.stages.values():
        source = search.stages.get(stage.source) if stage.source else None
        n = planned_trials(source, search) if source is not None else None
        if n is None:
            continue
        for key in ("top_k", "top_n"):
            want = getattr(stage, key) if (key == "top_k" or stage.kind == "repeat") else None
            if isinstance(want, int) and want > n:
                raise UserError(f"search.stages.{stage.name}.{key}: {want} is more than the "
                                f"{n} trials stage {source.name!r} plans")
