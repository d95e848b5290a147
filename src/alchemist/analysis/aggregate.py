"""Per-stage tables written by the `aggregate` step (docs/architecture.md):

- `trials`     : the stage table (alchemist.analysis.tables), one row per trial;
- `seeds`      : one row per configuration: mean, std, 95% CI, n over its seeds (PB-31);
- `leaderboard`: the configurations ranked by mean validation metric.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from alchemist.analysis.stats import configurations
from alchemist.analysis.tables import varied_columns
from alchemist.atomic import replacing
from alchemist.trial import canonical_json


def seeds_table(trials: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Mean, std and t-interval of best_val_metric per configuration with a usable trial (PB-31)."""
    if trials.empty:
        return pd.DataFrame()
    mode = {cid: m for cid, m in zip(trials["config_id"], trials["mode"])}
    rows = []
    for c in configurations(trials.itertuples(index=False), confidence):
        if c["n"] == 0:
            continue
        low, high = c["ci"] or (None, None)
        rows.append({"config_id": c["config_id"], "n": c["n"], "mean": c["mean"], "std": c["std"],
                     "ci_low": low, "ci_high": high, "ci_half_width": c["ci_half_width"],
                     "mode": mode[c["config_id"]], "trial_ids": ",".join(c["trial_ids"]),
                     "params_json": canonical_json(c["params"])})
    return pd.DataFrame(rows)


def leaderboard(seeds: pd.DataFrame, trials: pd.DataFrame | None = None) -> pd.DataFrame:
    """Configurations ranked by mean; the metric's name in the mean's column (e.g.
    `val_accuracy_mean`) and one column per setting the stage varied, params_json last."""
    if seeds.empty:
        return seeds
    ascending = seeds["mode"].iloc[0] == "min"
    board = seeds.sort_values(["mean", "config_id"], ascending=[ascending, True], ignore_index=True)
    board.insert(0, "rank", range(1, len(board) + 1))
    if trials is not None and len(trials):
        settings = [json.loads(p) for p in board["params_json"]]
        for i, col in enumerate(varied_columns(trials)):
            key = col[2:]
            board.insert(3 + i, key, [s.get(key) if not isinstance(s.get(key), (list, dict))
                                      else json.dumps(s.get(key)) for s in settings])
        names = trials["metric"].dropna().astype(str).unique() if "metric" in trials else []
        if len(names) == 1:
            board = board.rename(columns={c: f"val_{names[0]}_{c}" for c in
                                          ("mean", "std", "ci_low", "ci_high", "ci_half_width")})
    return board[[c for c in board.columns if c != "params_json"] + ["params_json"]]


def write_tables(trials: pd.DataFrame, out: Path, summary: bool) -> list[Path]:
    """Write the trials table (Parquet + CSV) and, with `summary`, seeds and leaderboard tables."""
    written = [_write(trials, out)]
    if summary:
        seeds = seeds_table(trials)
        written.append(_write(seeds, out.with_name("seeds.parquet")))
        with replacing(out.with_name("leaderboard.csv")) as tmp:
            leaderboard(seeds, trials).to_csv(tmp, index=False)
        written.append(out.with_name("leaderboard.csv"))
    return written


def _write(frame: pd.DataFrame, path: Path) -> Path:
    with replacing(path) as tmp:
        frame.to_parquet(tmp, index=False)
    with replacing(path.with_suffix(".csv")) as tmp:
        frame.to_csv(tmp, index=False)
    return path
