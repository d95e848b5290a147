"""The search layer's files: the results tables it reads and the JSON it writes.

A results table (written by the aggregate step) has one row per trial with at least the columns
REQUIRED_COLUMNS; `params_json` is the canonical JSON of the trial's config. Rows whose status is
in USABLE_STATUSES and whose `best_val_metric` is finite are ranked; diverged and failed trials
never win, and model-based samplers are told them as the worst usable value seen (or as failed
when there is none), so they learn to avoid that region.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

import pandas as pd

from alchemist.errors import UserError

REQUIRED_COLUMNS = ("trial_id", "status", "best_val_metric", "best_val_loss", "mode", "params_json")
USABLE_STATUSES = frozenset({"completed", "early_stopped"})


@dataclass(frozen=True)
class Result:
    trial_id: str
    settings: dict          # the trial config (params_json)
    value: float            # best_val_metric


def read_table(path: str | os.PathLike, what: str = "results table") -> pd.DataFrame:
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {what} {path}: {err}") from None
    return check_table(table, f"{what} {path}")


def check_table(table: pd.DataFrame, where: str = "results table") -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise UserError(f"{where}: missing column(s) {', '.join(missing)}")
    return table


def table_mode(table: pd.DataFrame, where: str = "results table") -> str:
    """`max` or `min`: the one optimisation direction of every row."""
    modes = sorted(set(table["mode"].dropna().astype(str)))
    if len(modes) != 1 or modes[0] not in ("max", "min"):
        raise UserError(f"{where}: expected one mode (max or min) in column `mode`, got {modes}")
    return modes[0]


def usable_value(row) -> float | None:
    """A row's best_val_metric when the trial counts (usable status, finite value), else None."""
    try:
        value = float(row.best_val_metric)
    except (TypeError, ValueError):
        return None
    return value if row.status in USABLE_STATUSES and math.isfinite(value) else None


def ranked(table: pd.DataFrame, where: str = "results table") -> list[Result]:
    """Usable trials, best first (ties broken by trial id)."""
    check_table(table, where)
    if table.empty:
        return []
    sign = -1.0 if table_mode(table, where) == "max" else 1.0
    rows = [Result(str(r.trial_id), json.loads(r.params_json), usable_value(r))
            for r in table.itertuples(index=False) if usable_value(r) is not None]
    return sorted(rows, key=lambda r: (sign * r.value, r.trial_id))


def top(table: pd.DataFrame, n: int, where: str) -> list[Result]:
    """The best `n` usable trials; an error when there is none."""
    best = ranked(table, where)
    if not best:
        raise UserError(f"{where}: no completed trial to rank (all failed or diverged?)")
    return best[:n]


def told_history(table: pd.DataFrame) -> list[tuple[str, dict, float | None]]:
    """(trial_id, settings, value) for every row; unusable rows get the worst usable value."""
    check_table(table)
    if table.empty:
        return []
    best = ranked(table)
    worst = best[-1].value if best else None
    good = {r.trial_id: r.value for r in best}
    return [(str(r.trial_id), json.loads(r.params_json), good.get(str(r.trial_id), worst))
            for r in table.itertuples(index=False)]


def dumps(obj: Any) -> str:
    """Deterministic, human-readable JSON (sorted keys, one trailing newline)."""
    return json.dumps(obj, sort_keys=True, indent=1, allow_nan=False) + "\n"


