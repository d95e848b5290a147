"""Per-stage tables built from the per-trial files (the files are the source of truth).

- `trials` : one row per trial — status, diagnosis, best/final metrics, epochs run, wall time,
  the trial's settings as canonical JSON (`params_json`) and flattened (`p.<key>`);
- `seeds`  : one row per configuration (settings without seed): mean, std, 95% CI, n (PB-31);
- `leaderboard`: configurations ranked by mean validation metric.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from alchemist.atomic import replacing
from alchemist.search.select import NOT_CONFIG_KEYS, config_id, summarise_values
from alchemist.trial import canonical_json

SUMMARY_COLUMNS = ("status", "metric", "mode", "best_epoch", "best_val_metric", "best_val_loss",
                   "final_val_metric", "final_val_loss", "epochs_run", "diverged_epoch",
                   "wall_time_s")


def _flat(value):
    return canonical_json(value) if isinstance(value, (list, dict)) else value


def trial_row(trial_dir: Path, pack_id: str | None = None, round_: int | None = None) -> dict:
    """One table row from a trial folder (summary.json + config.json)."""
    summary = json.loads((trial_dir / "summary.json").read_text())
    config = json.loads((trial_dir / "config.json").read_text())
    row = {"trial_id": summary.get("trial_id", trial_dir.name), "stage": config.get("stage"),
           "pack_id": pack_id, "round": round_}
    row.update({k: summary.get(k) for k in SUMMARY_COLUMNS})
    diagnosis = summary.get("diagnosis") or {}
    row["diagnosis"] = diagnosis.get("label")
    row["next_step"] = diagnosis.get("next_step")
    row["config_id"] = config_id(config)
    row["params_json"] = canonical_json(config)
    row.update({f"p.{k}": _flat(v) for k, v in sorted(config.items()) if k != "trial_id"})
    return row


def trials_table(pack_files: list[Path], trials_dir: Path) -> pd.DataFrame:
    """Rows for every trial named in the pack done-files; a trial seen in a later round wins."""
    rows: dict[str, dict] = {}
    for path in pack_files:
        done = json.loads(Path(path).read_text())
        round_ = _round_of(Path(path))
        for tid in done["trials"]:
            previous = rows.get(tid)
            if previous is None or (previous["round"] or 0) <= (round_ or 0):
                rows[tid] = trial_row(trials_dir / tid, done.get("pack_id"), round_)
    table = pd.DataFrame(list(rows.values()))
    return table.sort_values("trial_id", ignore_index=True) if len(table) else table


def _round_of(pack_file: Path) -> int | None:
    for part in pack_file.parts:
        if part.startswith("round") and part[5:].isdigit():
            return int(part[5:])
    return None


def seeds_table(trials: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Mean, std and t-interval of best_val_metric per configuration (PB-31)."""
    usable = trials[trials["status"].isin(["completed", "early_stopped"])]
    rows = []
    for cid, group in usable.groupby("config_id", sort=True):
        values = [float(v) for v in group["best_val_metric"] if v is not None and math.isfinite(v)]
        stats = summarise_values(values, confidence)
        params = {k: v for k, v in json.loads(group["params_json"].iloc[0]).items()
                  if k not in NOT_CONFIG_KEYS}
        low, high = stats["ci"] or (None, None)
        rows.append({"config_id": cid, "n": stats["n"], "mean": stats["mean"], "std": stats["std"],
                     "ci_low": low, "ci_high": high, "ci_half_width": stats["ci_half_width"],
                     "mode": group["mode"].iloc[0], "trial_ids": ",".join(group["trial_id"]),
                     "params_json": canonical_json(params)})
    return pd.DataFrame(rows)


def leaderboard(seeds: pd.DataFrame) -> pd.DataFrame:
    if seeds.empty:
        return seeds
    ascending = seeds["mode"].iloc[0] == "min"
    board = seeds.sort_values(["mean", "config_id"], ascending=[ascending, True], ignore_index=True)
    board.insert(0, "rank", range(1, len(board) + 1))
    return board


def write_tables(trials: pd.DataFrame, out: Path, summary: bool) -> list[Path]:
    """Write the trials table (Parquet + CSV) and, with `summary`, seeds and leaderboard tables."""
    out.parent.mkdir(parents=True, exist_ok=True)
    written = [_write(trials, out)]
    if summary:
        seeds = seeds_table(trials)
        written.append(_write(seeds, out.with_name("seeds.parquet")))
        board = leaderboard(seeds)
        board.to_csv(out.with_name("leaderboard.csv"), index=False)
        written.append(out.with_name("leaderboard.csv"))
    return written


def _write(frame: pd.DataFrame, path: Path) -> Path:
    with replacing(path) as tmp:
        frame.to_parquet(tmp, index=False)
    with replacing(path.with_suffix(".csv")) as tmp:
        frame.to_csv(tmp, index=False)
    return path
