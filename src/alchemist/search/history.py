"""What the search learns from earlier results: stage tables (alchemist.analysis.tables) ranked.

Usable trials (alchemist.analysis.stats) are ranked by `kept_val_metric`; diverged and failed
trials never win, and model-based samplers are told them as the worst usable value seen (or as
failed when there is none), so they learn to avoid that region.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from alchemist.analysis.stats import usable_value
from alchemist.analysis.tables import check_table, table_mode
from alchemist.errors import UserError


@dataclass(frozen=True)
class Result:
    trial_id: str
    settings: dict          # the trial config (params_json)
    value: float            # kept_val_metric


def ranked(table: pd.DataFrame, where: str = "results table") -> list[Result]:
    """Usable trials, best first (ties broken by trial id)."""
    check_table(table, where)
    if table.empty:
        return []
    sign = -1.0 if table_mode(table, where) == "max" else 1.0
    rows = []
    for r in table.itertuples(index=False):
        value = usable_value(r.status, r.kept_val_metric)
        if value is not None:
            rows.append(Result(str(r.trial_id), json.loads(r.params_json), value))
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
