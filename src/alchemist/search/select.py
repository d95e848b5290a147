"""Select the winner of a repeat stage (PB-31): mean, std and confidence interval over seeds.

Trials are grouped into configurations by their settings without `seed` and `trial_id`. Per
configuration: the usable values (completed or early-stopped, finite best_val_metric), their
mean, sample std (ddof 1) and the Student-t interval mean ± t(1 - (1-c)/2, n-1) · std / √n.
The winner has the best mean (highest for mode max, lowest for min; ties by configuration id).
`within_noise` is true when the winner's interval overlaps the runner-up's, or when either has
fewer than two values (no interval: the two cannot be told apart).
"""
from __future__ import annotations

import json
import math
import statistics
from typing import Any

import pandas as pd

from alchemist.errors import UserError
from alchemist.search.results_io import check_table, table_mode, usable_value
from alchemist.trial import short_hash

NOT_CONFIG_KEYS = ("trial_id", "seed")


def config_id(settings: dict) -> str:
    """Id of a configuration: the hash of its settings without seed and trial id."""
    return short_hash({k: v for k, v in settings.items() if k not in NOT_CONFIG_KEYS})


def t_quantile(confidence: float, dof: int) -> float:
    """Two-sided Student-t critical value, e.g. 2.776 for 95% and 4 degrees of freedom."""
    from scipy.stats import t
    return float(t.ppf(0.5 + confidence / 2, dof))


def summarise_values(values: list[float], confidence: float) -> dict[str, Any]:
    """n, mean, std, ci_half_width, ci ([low, high]); undefined statistics are None."""
    n = len(values)
    out: dict[str, Any] = {"n": n, "mean": None, "std": None, "ci_half_width": None, "ci": None}
    if n == 0:
        return out
    mean = statistics.fmean(values)
    out["mean"] = mean
    if n >= 2:
        std = statistics.stdev(values)
        half = t_quantile(confidence, n - 1) * std / math.sqrt(n)
        out.update(std=std, ci_half_width=half, ci=[mean - half, mean + half])
    return out


def _overlap(a: dict, b: dict) -> bool:
    if a["ci"] is None or b["ci"] is None:
        return True
    return max(a["ci"][0], b["ci"][0]) <= min(a["ci"][1], b["ci"][1])


def select_winner(table: pd.DataFrame, confidence: float = 0.95,
                  where: str = "results table") -> dict[str, Any]:
    """The winner.json dict: mode, confidence, winner, runner_up, within_noise, configs (ranked)."""
    check_table(table, where)
    if table.empty:
        raise UserError(f"{where}: no trials")
    mode = table_mode(table, where)
    groups: dict[str, dict[str, Any]] = {}
    for row in table.sort_values("trial_id").itertuples(index=False):
        settings = json.loads(row.params_json)
        cid = config_id(settings)
        g = groups.setdefault(cid, {
            "config_id": cid, "trial_ids": [], "seeds": [], "values": [], "failed": [],
            "params": {k: v for k, v in settings.items() if k not in NOT_CONFIG_KEYS}})
        value = usable_value(row)
        if value is None:
            g["failed"].append(str(row.trial_id))
            continue
        g["trial_ids"].append(str(row.trial_id))
        g["seeds"].append(settings.get("seed"))
        g["values"].append(value)
    configs = [{**g, **summarise_values(g["values"], confidence)} for g in groups.values()]
    sign = -1.0 if mode == "max" else 1.0
    scored = sorted((c for c in configs if c["n"] > 0), key=lambda c: (sign * c["mean"], c["config_id"]))
    if not scored:
        raise UserError(f"{where}: no completed trial (all failed or diverged?)")
    unscored = sorted((c for c in configs if c["n"] == 0), key=lambda c: c["config_id"])
    winner, runner_up = scored[0], (scored[1] if len(scored) > 1 else None)
    return {"mode": mode, "confidence": confidence, "winner": winner, "runner_up": runner_up,
            "within_noise": runner_up is not None and _overlap(winner, runner_up),
            "configs": scored + unscored}


def _interval(c: dict, confidence: float) -> str:
    if c["ci_half_width"] is None:
        return f"{c['mean']:.6g} (n={c['n']}, no interval)"
    return f"{c['mean']:.6g} ± {c['ci_half_width']:.3g} ({confidence:.0%} CI, n={c['n']})"


def describe_winner(result: dict[str, Any]) -> str:
    """One or two lines for the log, e.g. `winner 3fa2...: 0.9731 ± 0.0042 (95% CI, n=5)`."""
    conf, w, r = result["confidence"], result["winner"], result["runner_up"]
    line = f"winner {w['config_id']}: {_interval(w, conf)}"
    if r is not None:
        verdict = "within noise of" if result["within_noise"] else "clearly ahead of"
        line += f"\n{verdict} runner-up {r['config_id']}: {_interval(r, conf)}"
    return line
