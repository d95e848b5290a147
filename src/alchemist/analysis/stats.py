"""Result statistics, the ONE home of each: which trials count, what a configuration is, and the
mean ± Student-t interval over its seeds (PB-31). Aggregation, selection, the plots, the lockbox
and tracking all use these, so every file, figure and MLflow tag agrees.

* usable: status completed or early_stopped, and a finite `kept_val_metric`; diverged and failed
  trials never rank or win;
* configuration: a trial's settings without `seed` and `trial_id`; its id is the first 12 hex
  chars of sha256 of their canonical JSON (`config_id`); its family id (`family_id`) leaves out
  the stage, data split and epochs too, so it stays the same from the fine stage to the repeat;
* interval: mean ± t(1 - (1-c)/2, n-1) · std / √n with the sample std (ddof 1); undefined (None)
  for fewer than two values.
"""
from __future__ import annotations

import json
import math
import statistics
from typing import Any, Iterable

from alchemist.trial import identity, short_hash

USABLE_STATUSES = frozenset({"completed", "early_stopped"})
NOT_CONFIG_KEYS = ("trial_id", "seed")
#: what a stage sets around the hyperparameters: left out of a configuration's family id, so a
#: fine configuration and its repeat (more epochs, another stage) share one
STAGE_KEYS = ("stage", "data", "epochs", "schedule_epochs")


def config_id(settings: dict) -> str:
    """Id of a configuration: the hash of its settings without seed and trial id."""
    return short_hash(config_settings(settings))


def family_id(settings: dict) -> str:
    """Id of a configuration across stages: its hyperparameters only (no stage, data split or
    epoch budget): the same for a coarse or fine trial and the repeat of its configuration."""
    return short_hash({k: v for k, v in config_settings(settings).items() if k not in STAGE_KEYS})


def config_settings(settings: dict) -> dict:
    """The settings that make a configuration (alchemist.trial.identity, less seed and stage)."""
    return {k: v for k, v in identity(settings).items() if k not in NOT_CONFIG_KEYS}


def usable_value(status: Any, value: Any) -> float | None:
    """`value` as a float when the trial counts (usable status, finite value), else None."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if status in USABLE_STATUSES and math.isfinite(value) else None


def t_quantile(confidence: float, dof: int) -> float:
    """Two-sided Student-t critical value, e.g. 2.776 for 95% and 4 degrees of freedom (the
    inverse CDF scipy.stats.t.ppf calls, without importing scipy.stats: 0.3 s instead of 1.2)."""
    from scipy.special import stdtrit

    return float(stdtrit(dof, 0.5 + confidence / 2))


def summarise_values(values: list[float], confidence: float = 0.95) -> dict[str, Any]:
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


def configurations(rows: Iterable, confidence: float = 0.95) -> list[dict[str, Any]]:
    """Per configuration, in config-id order: config_id, params, trial_ids, seeds, values (usable
    trials, in trial-id order), failed (the others' ids) and the summarise_values statistics.
    `rows` are trial rows with trial_id, status, kept_val_metric and params_json."""
    groups: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: str(r.trial_id)):
        settings = json.loads(row.params_json)
        cid = config_id(settings)
        g = groups.setdefault(cid, {"config_id": cid, "trial_ids": [], "seeds": [], "values": [],
                                    "failed": [], "params": config_settings(settings)})
        value = usable_value(row.status, row.kept_val_metric)
        if value is None:
            g["failed"].append(str(row.trial_id))
            continue
        g["trial_ids"].append(str(row.trial_id))
        g["seeds"].append(settings.get("seed"))
        g["values"].append(value)
    return [{**g, **summarise_values(g["values"], confidence)} for _, g in sorted(groups.items())]


def ranked_configurations(configs: list[dict], mode: str) -> list[dict]:
    """Configurations with at least one usable value, best mean first (ties by config id)."""
    sign = -1.0 if mode == "max" else 1.0
    return sorted((c for c in configs if c["n"] > 0), key=lambda c: (sign * c["mean"], c["config_id"]))


def intervals_overlap(a: dict, b: dict) -> bool:
    """True when the two intervals overlap, or either has none (they cannot be told apart)."""
    if a["ci"] is None or b["ci"] is None:
        return True
    return max(a["ci"][0], b["ci"][0]) <= min(a["ci"][1], b["ci"][1])
