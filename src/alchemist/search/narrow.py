"""Coarse → fine (PB-29): narrow a space around the top-k results of an earlier stage.

* ranges: the span of the top-k values, widened on each side by MARGIN of the wide range's width,
  clipped to the wide range; in log space for log parameters (PB-27), rounded for ints (a range
  that shrinks to one integer becomes a fixed value);
* choice: only the values seen in the top-k;
* grid: numeric grids keep the contiguous run of values between the smallest and largest seen,
  other grids the values seen;
* fixed values, and parameters that no top-k trial used (condition false), stay as they are.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Sequence

from alchemist.search.space import Param, in_range, value_order
from alchemist.trial import canonical_json

#: Fraction of the wide range (in the parameter's scale) added on each side of the top-k span.
MARGIN = 0.1


def narrow_param(p: Param, seen: Sequence[Any]) -> Param:
    """`p` narrowed to the values `seen` in the top-k trials."""
    seen = [v for v in seen if in_range(p, v)]
    if not p.searched or not seen:
        return p
    if p.kind == "choice" or (p.kind == "grid" and any(value_order(v)[0] for v in p.values)):
        texts = {canonical_json(v) for v in seen}
        return replace(p, values=tuple(v for v in p.values if canonical_json(v) in texts))
    if p.kind == "grid":
        lo, hi = min(seen), max(seen)
        return replace(p, values=tuple(v for v in p.values if lo <= v <= hi))
    margin = MARGIN * (p.to_scale(p.high) - p.to_scale(p.low))
    low = p.from_scale(min(p.to_scale(v) for v in seen) - margin)
    high = p.from_scale(max(p.to_scale(v) for v in seen) + margin)
    if p.kind == "int":
        low, high = round(low), round(high)        # the seen (integer) values stay inside
    low, high = max(p.low, low), min(p.high, high)
    if low >= high:
        return Param(p.key, "fixed", values=(low,), when=p.when)
    return replace(p, low=low, high=high)


def narrow_space(space: Mapping[str, Param], top: Sequence[Mapping[str, Any]]) -> dict[str, Param]:
    """The space narrowed around `top` (the full settings of the top-k trials)."""
    return {k: narrow_param(p, [t[k] for t in top if k in t and p.active(t)])
            for k, p in space.items()}


def describe(p: Param) -> str:
    """One line for logs, e.g. `lr: log_uniform [0.0001, 0.1]`."""
    if p.kind == "fixed":
        return f"{p.key}: {canonical_json(p.values[0])}"
    if p.kind in ("choice", "grid"):
        return f"{p.key}: {p.kind} {canonical_json(list(p.values))}"
    return f"{p.key}: {p.kind}{' (log)' if p.kind == 'int' and p.log else ''} [{p.low:.6g}, {p.high:.6g}]"


def narrowing_report(wide: Mapping[str, Param], narrow: Mapping[str, Param]) -> list[str]:
    """`key: before -> after` for each parameter the narrowing changed."""
    return [f"{describe(wide[k])}  ->  {describe(narrow[k]).split(': ', 1)[1]}"
            for k in wide if narrow[k] != wide[k]]
