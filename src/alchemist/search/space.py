"""The declarative search space of `search.space` (PB-27): parse, validate, canonicalise.

Each key of the space is a training setting (a key of `alchemist.trial.TRIAL_DEFAULTS`); its
value is either a plain value (fixed) or a mapping with exactly one distribution key:

    lr:         {log_uniform: [1.0e-4, 1.0e-1]}      # log scale (PB-27)
    dropout:    {uniform: [0.0, 0.5]}                # linear scale
    width:      {int: [16, 256], log: true}          # integers, optionally log scale
    hidden:     {choice: [[64], [128], [128, 64]]}   # unordered alternatives
    batch_size: {grid: [32, 64, 128]}                # explicit ordered values
    nesterov:   {value: true, when: {optimizer: sgd}}   # fixed, written as a mapping
    momentum:   {uniform: [0.5, 0.99], when: {optimizer: [sgd, rmsprop]}}  # conditional

`points: N` (uniform, log_uniform, int) tells the grid sampler how many evenly spaced values to
take (in log space for log ranges). `when` lists conditions that must all hold for the parameter
to be sampled; a list in `when` means "any of" (to match a list value, nest it: `[[128]]`). A
condition may refer to any training setting, but not to another conditional parameter.

The space is canonical: parameters are kept in sorted key order and choice/grid values in
canonical order (numbers by value, everything else by canonical JSON), so reordering keys or
choices in the YAML changes nothing downstream. PyYAML reads `1e-4` (no dot) as a string;
numeric strings are accepted as bounds for that reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from alchemist.errors import UserError
from alchemist.trial import TRIAL_DEFAULTS, canonical_json

RANGE_KINDS = ("uniform", "log_uniform", "int")
LIST_KINDS = ("choice", "grid")
KINDS = RANGE_KINDS + LIST_KINDS + ("value",)
_OPTIONS = {"when", "log", "points"}


@dataclass(frozen=True)
class Param:
    """One dimension of the space. `kind` is `fixed` for a plain value."""

    key: str
    kind: str                                   # fixed | uniform | log_uniform | int | choice | grid
    low: float | int | None = None              # range kinds
    high: float | int | None = None
    log: bool = False                           # log_uniform, or int with log: true
    values: tuple = ()                          # choice/grid values (canonical order); fixed: (v,)
    points: int | None = None                   # grid sampler resolution for ranges
    when: tuple[tuple[str, tuple], ...] = ()    # ((setting, allowed values), ...)

    @property
    def searched(self) -> bool:
        """Whether the parameter is searched: any kind but `fixed`."""
        return self.kind != "fixed"

    def to_scale(self, x: float) -> float:
        """The value on the axis the search spreads evenly: log for log parameters (PB-27)."""
        return math.log(x) if self.log else float(x)

    def from_scale(self, t: float) -> float:
        """The value at `t` on the search axis: the inverse of `to_scale` (exp for log parameters)."""
        return math.exp(t) if self.log else t

    def active(self, settings: Mapping[str, Any]) -> bool:
        """Whether every `when` condition holds for these (resolved) settings."""
        return all(canonical_json(settings.get(k)) in {canonical_json(v) for v in allowed}
                   for k, allowed in self.when)


def value_order(value: Any) -> tuple:
    """Sort key of the canonical order: numbers by value first, then the rest by canonical JSON."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), canonical_json(value))
    return (1, 0.0, canonical_json(value))


def canonical_values(values: list, where: str) -> tuple:
    """Values in canonical order; duplicates are an error (they would skew random draws)."""
    seen: set[str] = set()
    for v in values:
        text = canonical_json(v)
        if text in seen:
            raise UserError(f"{where}: duplicate value {text}")
        seen.add(text)
    return tuple(sorted(values, key=value_order))


def _number(x: Any, where: str) -> float:
    if isinstance(x, bool):
        raise UserError(f"{where}: expected a number, got {x!r}")
    if isinstance(x, (int, float)):
        return x
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            pass
    raise UserError(f"{where}: expected a number, got {x!r}")


def _bounds(spec: Any, kind: str, where: str) -> tuple:
    if not isinstance(spec, (list, tuple)) or len(spec) != 2:
        raise UserError(f"{where}: {kind} needs [low, high], got {spec!r}")
    low, high = (_number(b, where) for b in spec)
    if kind == "int":
        if low != int(low) or high != int(high):
            raise UserError(f"{where}: int bounds must be integers, got {spec!r}")
        low, high = int(low), int(high)
    else:
        low, high = float(low), float(high)
    if not low < high:
        raise UserError(f"{where}: {kind} needs low < high, got {spec!r} (use a plain value to fix it)")
    return low, high


def _conditions(when: Any, where: str) -> tuple:
    if not isinstance(when, Mapping) or not when:
        raise UserError(f"{where}.when: expected a mapping of setting: value(s), got {when!r}")
    out = []
    for k in sorted(when):
        if k not in TRIAL_DEFAULTS:
            raise UserError(f"{where}.when: unknown training setting {k!r}")
        allowed = when[k] if isinstance(when[k], list) else [when[k]]
        out.append((k, canonical_values(allowed, f"{where}.when.{k}")))
    return tuple(out)


def parse_param(key: str, spec: Any, where: str) -> Param:
    """One space entry (`where` names it in errors, e.g. `search.space.lr`)."""
    if key not in TRIAL_DEFAULTS:
        raise UserError(f"{where}: unknown training setting {key!r}")
    if not isinstance(spec, Mapping):
        return Param(key, "fixed", values=(spec,))
    kinds = [k for k in spec if k in KINDS]
    if len(kinds) != 1:
        raise UserError(f"{where}: give exactly one of {', '.join(KINDS)} (got {sorted(spec)})")
    kind = kinds[0]
    extra = set(spec) - {kind} - _OPTIONS
    if extra:
        raise UserError(f"{where}: unknown option(s) {', '.join(sorted(extra))}")
    when = _conditions(spec["when"], where) if "when" in spec else ()
    if "log" in spec and kind != "int":
        raise UserError(f"{where}: `log` applies to int ranges only (use log_uniform)")
    if "points" in spec and kind not in RANGE_KINDS:
        raise UserError(f"{where}: `points` applies to ranges only")
    points = spec.get("points")
    if points is not None and (isinstance(points, bool) or not isinstance(points, int) or points < 2):
        raise UserError(f"{where}: points must be an integer >= 2, got {points!r}")
    if kind == "value":
        return Param(key, "fixed", values=(spec["value"],), when=when)
    if kind in LIST_KINDS:
        values = spec[kind]
        if not isinstance(values, list) or not values:
            raise UserError(f"{where}: {kind} needs a non-empty list, got {values!r}")
        return Param(key, kind, values=canonical_values(values, where), when=when)
    low, high = _bounds(spec[kind], kind, where)
    log = kind == "log_uniform" or bool(spec.get("log", False))
    if log and low <= 0:
        raise UserError(f"{where}: {kind} bounds must be > 0 on a log scale, got {spec[kind]!r}")
    return Param(key, kind, low=low, high=high, log=log, points=points, when=when)


def check_conditions(space: Mapping[str, Param], where: str) -> None:
    """Conditions may not chain, and may only name values their setting can take."""
    for p in space.values():
        for k, allowed in p.when:
            ref = space.get(k)
            if ref is None:
                continue
            if ref.when:
                raise UserError(f"{where}.{p.key}.when: {k!r} is itself conditional")
            if ref.kind in LIST_KINDS or ref.kind == "fixed":
                possible = {canonical_json(v) for v in ref.values}
                for v in allowed:
                    if canonical_json(v) not in possible:
                        raise UserError(f"{where}.{p.key}.when.{k}: {canonical_json(v)} is not "
                                        f"one of the values of {where}.{k}")


def parse_space(raw: Any, where: str = "search.space",
                overlay: Mapping[str, Any] | None = None, overlay_where: str = "") -> dict[str, Param]:
    """The space as {key: Param} in sorted key order; `overlay` entries replace `raw` ones."""
    if not isinstance(raw, Mapping):
        raise UserError(f"{where}: expected a mapping of training setting: distribution")
    space = {k: parse_param(k, raw[k], f"{where}.{k}") for k in raw}
    for k in overlay or {}:
        space[k] = parse_param(k, overlay[k], f"{overlay_where}.{k}")
    space = {k: space[k] for k in sorted(space)}
    check_conditions(space, where)
    return space


def in_range(p: Param, value: Any) -> bool:
    """Whether `value` is a value that `p` can produce."""
    if p.kind in LIST_KINDS or p.kind == "fixed":
        return canonical_json(value) in {canonical_json(v) for v in p.values}
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return False
    return p.low <= value <= p.high
