"""The stage table, the ONE builder of it: one row per trial, made from the trial folders (the
files are the source of truth) and read back by the search, selection, plots and tracking.

Columns: trial_id, stage, pack_id, round, the summary's fields (SUMMARY_COLUMNS), diagnosis,
next_step, config_id, params_json (canonical JSON of the trial config) and one `p.<key>` column
per setting (nested mappings as dotted keys, lists as canonical JSON).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from alchemist.analysis.stats import config_id
from alchemist.errors import UserError
from alchemist.trial import canonical_json

SUMMARY_COLUMNS = ("status", "metric", "mode", "best_epoch", "best_val_metric", "best_val_loss",
                   "final_val_metric", "final_val_loss", "epochs_run", "diverged_epoch",
                   "wall_time_s")
REQUIRED_COLUMNS = ("trial_id", "status", "best_val_metric", "best_val_loss", "mode", "params_json")


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings become dotted keys; lists become canonical JSON strings."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, prefix=f"{name}."))
        elif isinstance(value, (list, tuple)):
            out[name] = canonical_json(list(value))
        else:
            out[name] = value
    return out


def trial_row(trial_dir: Path, pack_id: str | None = None, round_: int | None = None) -> dict:
    """One table row from a trial folder (summary.json + config.json)."""
    summary = json.loads((trial_dir / "summary.json").read_text())
    cfg_path = trial_dir / "config.json"
    config = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    row = {"trial_id": summary.get("trial_id", trial_dir.name), "stage": config.get("stage"),
           "pack_id": pack_id, "round": round_}
    row.update({k: summary.get(k) for k in SUMMARY_COLUMNS})
    diagnosis = summary.get("diagnosis") or {}
    row["diagnosis"] = diagnosis.get("label")
    row["next_step"] = diagnosis.get("next_step")
    row["config_id"] = config_id(config)
    row["params_json"] = canonical_json(config)
    row.update({f"p.{k}": v for k, v in sorted(flatten(config).items()) if k != "trial_id"})
    return row


def _round_of(pack_file: Path) -> int | None:
    for part in pack_file.parts:
        if part.startswith("round") and part[5:].isdigit():
            return int(part[5:])
    return None


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
    return _frame(list(rows.values()))


def stage_table(stage_dir: Path) -> pd.DataFrame:
    """A stage's table: its `trials.parquet` when the pipeline wrote one (exactly the trials of
    the current plan), else rows from every trial folder that has a summary."""
    stage_dir = Path(stage_dir)
    if (stage_dir / "trials.parquet").exists():
        return pd.read_parquet(stage_dir / "trials.parquet")
    return _frame([trial_row(p.parent) for p in sorted(stage_dir.glob("trials/*/summary.json"))])


def _frame(rows: list[dict]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame(columns=list(REQUIRED_COLUMNS))
    return pd.DataFrame(rows).sort_values("trial_id", ignore_index=True)


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
