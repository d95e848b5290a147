"""Select the winner of a repeat stage (PB-31): mean, std and confidence interval over seeds.

Trials are grouped into configurations and summarised by alchemist.analysis.stats (usable
trials only; Student-t interval). The winner has the best mean (highest for mode max, lowest for
min; ties by configuration id). `within_noise` is true when the winner's interval overlaps the
runner-up's, or when either has fewer than two values (no interval: the two cannot be told apart).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from alchemist.analysis.stats import configurations, intervals_overlap, ranked_configurations
from alchemist.analysis.tables import check_table, table_mode
from alchemist.errors import UserError


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
    winner, runner_up = scored[0], (scored[1] if len(scored) > 1 else None)
    names = sorted(set(table["metric"].dropna().astype(str))) if "metric" in table else []
    metric = f"val_{names[0]}" if len(names) == 1 else "val_metric"
    return {"mode": mode, "metric": metric, "confidence": confidence, "source": source, "winner": winner,
            "runner_up": runner_up,
            "within_noise": runner_up is not None and intervals_overlap(winner, runner_up),
            "configs": scored + unscored}


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


def load_winner(winner_file: Path | None, results: Path = Path("results")) -> tuple[Path, dict]:
    """(path, content) of winner.json: the file given, else the select stage's under `results`
    (whatever the stage is called; an error when there is none or more than one)."""
    if winner_file is None:
        found = sorted(Path(results).glob("*/winner.json"))
        if len(found) != 1:
            what = "no" if not found else f"{len(found)} ({', '.join(map(str, found))})"
            raise UserError(f"found {what} winner.json under {results}/; give --winner")
        winner_file = found[0]
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
