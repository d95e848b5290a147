"""Select the winner of a repeat stage (PB-31): mean, std and confidence interval over seeds.

Trials are grouped into configurations and summarised by alchemist.analysis.stats (usable
trials only; Student-t interval). The winner is the best mean (highest for mode max, lowest for
min) — unless other configurations are within noise of it (their intervals overlap): the data
cannot tell those apart, so the one with the smallest interval (the most reliable) wins, then the
simpler one (fewer hidden units, fewer settings off the defaults), then the configuration id;
`tie_break` says which rule decided. The runner-up is the best of the rest by mean.
`within_noise` is true when the winner's interval overlaps the runner-up's, or when either has
fewer than two values (no interval: the two cannot be told apart).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from alchemist.analysis.stats import configurations, intervals_overlap, ranked_configurations
from alchemist.analysis.tables import check_table, table_mode
from alchemist.errors import UserError
from alchemist.trial import TRIAL_DEFAULTS


def select_winner(table: pd.DataFrame, confidence: float = 0.95, where: str = "results table",
                  source: str | None = None) -> dict[str, Any]:
    """The winner.json dict: mode, metric (its name, e.g. val_accuracy), confidence, source (the
    repeat stage), winner, runner_up, within_noise, configs (ranked, then those without a usable
    trial)."""
    check_table(table, where)
    if table.empty:
        raise UserError(f"{where}: no trials")
    mode = table_mode(table, where)
    configs = configurations(table.itertuples(index=False), confidence)
    scored = ranked_configurations(configs, mode)
    if not scored:
        raise UserError(f"{where}: no completed trial (all failed or diverged?)")
    unscored = [c for c in configs if c["n"] == 0]
    winner, tie_break = pick(scored)
    scored = [winner, *[c for c in scored if c is not winner]]
    runner_up = scored[1] if len(scored) > 1 else None
    names = sorted(set(table["metric"].dropna().astype(str))) if "metric" in table else []
    metric = f"val_{names[0]}" if len(names) == 1 else "val_metric"
    return {"mode": mode, "metric": metric, "confidence": confidence, "source": source, "winner": winner,
            "runner_up": runner_up,
            "within_noise": runner_up is not None and intervals_overlap(winner, runner_up),
            "tie_break": tie_break, "configs": scored + unscored}


def complexity(c: dict) -> tuple:
    """What makes a configuration simpler: fewer hidden units, then fewer settings off the
    defaults (alchemist.trial.TRIAL_DEFAULTS)."""
    params = c.get("params") or {}
    hidden = params.get("hidden", TRIAL_DEFAULTS["hidden"])
    units = sum(hidden) if isinstance(hidden, list) else 0
    return units, sum(1 for k, v in params.items() if k in TRIAL_DEFAULTS and v != TRIAL_DEFAULTS[k])


def pick(scored: list[dict]) -> tuple[dict, dict]:
    """(the winner, how it was chosen) from configurations ranked best mean first."""
    best = scored[0]
    near = [c for c in scored if intervals_overlap(best, c)]
    if len(near) == 1:
        return best, {"rule": "best_mean", "within_noise_of_best": 1,
                      "text": "the best mean, clear of the rest"}
    width = lambda c: c["ci_half_width"] if c["ci_half_width"] is not None else math.inf  # noqa: E731
    winner = min(near, key=lambda c: (width(c), complexity(c), c["config_id"]))
    rule = ("best_mean" if winner is best and width(best) < min(width(c) for c in near if c is not best)
            else "smaller_ci" if width(winner) < max(width(c) for c in near) else "simpler")
    text = {"best_mean": "the best mean, and the smallest interval",
            "smaller_ci": "the smallest interval",
            "simpler": "the simpler configuration (equal intervals)"}[rule]
    return winner, {"rule": rule, "within_noise_of_best": len(near),
                    "text": f"{len(near)} configurations are within noise of the best mean; {text} decided"}


def _interval(c: dict, confidence: float) -> str:
    if c["ci_half_width"] is None:
        return f"{c['mean']:.6g} (n={c['n']}, no interval)"
    return f"{c['mean']:.6g} ± {c['ci_half_width']:.3g} ({confidence:.0%} CI, n={c['n']})"


def describe_winner(result: dict[str, Any]) -> str:
    """One or two lines for the log, e.g. `winner 3fa2...: 0.9731 ± 0.0042 (95% CI, n=5)`."""
    conf, w, r = result["confidence"], result["winner"], result["runner_up"]
    line = f"winner {w['config_id']}: {result.get('metric', 'metric')} {_interval(w, conf)}"
    if r is not None:
        verdict = "within noise of" if result["within_noise"] else "clearly ahead of"
        line += f"\n{verdict} runner-up {r['config_id']}: {_interval(r, conf)}"
    return line


def load_winner(winner_file: Path) -> tuple[Path, dict]:
    """(path, content) of a winner.json; a UserError when it does not exist."""
    if not Path(winner_file).exists():
        raise UserError(f"--winner {winner_file} not found: run the pipeline (its select stage) first")
    return Path(winner_file), json.loads(Path(winner_file).read_text())


def winner_trial_dirs(winner_file: Path, selection: dict, trials_dir: Path | None = None) -> list[Path]:
    """The winner's trial folders: under `trials_dir`, else under the stage it was selected from
    (winner.json's `source`, a sibling folder of the select stage's)."""
    if trials_dir is None:
        if not selection.get("source"):
            raise UserError(f"{winner_file} does not name the stage it selected from; give --trials-dir")
        trials_dir = Path(winner_file).parent.parent / selection["source"] / "trials"
    return [Path(trials_dir) / t for t in selection["winner"]["trial_ids"]]
