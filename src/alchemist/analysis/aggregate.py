"""Per-stage tables written by the `aggregate` step (docs/architecture.md):

- `trials`     : the stage table (alchemist.analysis.tables), one row per trial;
- `seeds`      : one row per configuration: mean, std, 95% CI, n over its seeds (PB-31);
- `leaderboard`: the configurations ranked by mean validation metric (CSV; its page in the
  report: alchemist.report.pages).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from alchemist.analysis.stats import configurations, family_id
from alchemist.analysis.tables import table_mode, varied_columns
from alchemist.atomic import replacing
from alchemist.trial import canonical_json


def seeds_table(trials: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Mean, std and t-interval of kept_val_metric per configuration with a usable trial (PB-31)."""
    if trials.empty:
        return pd.DataFrame()
    mode = {cid: m for cid, m in zip(trials["config_id"], trials["mode"])}
    rows = []
    for c in configurations(trials.itertuples(index=False), confidence):
        if c["n"] == 0:
            continue
        low, high = c["ci"] or (None, None)
        rows.append({"config_id": c["config_id"], "family_id": family_id(c["params"]), "n": c["n"], "mean": c["mean"], "std": c["std"],
                     "ci_low": low, "ci_high": high, "ci_half_width": c["ci_half_width"],
                     "mode": mode[c["config_id"]], "trial_ids": ",".join(c["trial_ids"]),
                     "params_json": canonical_json(c["params"])})
    return pd.DataFrame(rows)


def leaderboard(seeds: pd.DataFrame, trials: pd.DataFrame | None = None) -> pd.DataFrame:
    """Configurations ranked by mean; the metric's name in the mean's column (e.g.
    `val_accuracy_mean`), one column per setting the stage varied, the seeds' mean of every
    other named metric (`val_r2_mean`, `val_balanced_accuracy_mean`, …), params_json last."""
    if seeds.empty:
        return seeds
    ascending = table_mode(seeds, "the seeds table") == "min"
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
        by_trial = trials.set_index("trial_id")
        at = board.columns.get_loc("mode")
        for col in [c for c in trials.columns if c.startswith("kept_val_")
                    and c not in ("kept_val_metric", "kept_val_loss")]:
            name = f"{col[5:]}_mean"                      # e.g. val_r2_mean over the seeds
            if name not in board.columns:
                board.insert(at, name, [pd.to_numeric(by_trial[col].reindex(ids.split(",")),
                                                      errors="coerce").mean()
                                        for ids in board["trial_ids"]])
                at += 1
    return board[[c for c in board.columns if c != "params_json"] + ["params_json"]]


def write_tables(trials: pd.DataFrame, out: Path, summary: bool) -> pd.DataFrame | None:
    """Write the trials table (Parquet + CSV) and, with `summary`, the seeds table and the
    leaderboard's CSV; returns the leaderboard (None without `summary`), for its report page."""
    _write(trials, out)
    if not summary:
        return None
    seeds = seeds_table(trials)
    _write(seeds, out.with_name("seeds.parquet"))
    board = leaderboard(seeds, trials)
    with replacing(out.with_name("leaderboard.csv")) as tmp:
        board.to_csv(tmp, index=False)
    return board


def _write(frame: pd.DataFrame, path: Path) -> Path:
    with replacing(path) as tmp:
        frame.to_parquet(tmp, index=False)
    with replacing(path.with_suffix(".csv")) as tmp:
        frame.to_csv(tmp, index=False)
    return path
