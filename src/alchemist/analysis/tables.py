"""The stage table, the ONE builder of it: one row per trial, made from the trial folders (the
files are the source of truth) and read back by the search, selection, plots and tracking.

Columns: trial_id, stage, pack_id, round, the summary's fields (SUMMARY_COLUMNS), diagnosis,
next_step, the other named metrics at the kept epoch (`kept_val_r2`; or `kept_val_accuracy`,
`kept_val_balanced_accuracy`, `kept_val_macro_f1`, `kept_val_roc_auc`), config_id, params_json
(canonical JSON of the trial config) and one `p.<key>` column per setting (nested mappings as
dotted keys, lists as canonical JSON). The names say what they hold: `kept_*` is the value at
`kept_epoch`, the epoch whose weights the trial keeps (its monitor's best — the lowest val_loss
by default; early stopping restores them), `peak_val_metric` the best value of the selection
metric seen in any epoch, `final_*` the value at the last epoch run.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from alchemist.analysis.stats import config_id, family_id
from alchemist.errors import UserError
from alchemist.trial import canonical_json

SUMMARY_COLUMNS = ("status", "metric", "mode", "kept_epoch", "kept_val_metric", "kept_val_loss",
                   "peak_val_metric", "final_val_metric", "final_val_loss", "epochs_run", "diverged_epoch",
                   "wall_time_s")
REQUIRED_COLUMNS = ("trial_id", "status", "kept_val_metric", "kept_val_loss", "mode", "params_json")


#: settings that never name a run or count as varied (places, execution)
NOT_VARIED = {"trial_id", "stage", "data", "device", "checkpoint_every"}


class StagePlans:
    """What a stage's plan files say (the pipeline writes <stage>/round<k>/plan.json)."""

    def __init__(self, stage_dir: Path):
        self.dir = Path(stage_dir)
        plans = [json.loads(p.read_text()) for p in sorted(self.dir.glob("*plan.json"))
                 + sorted(self.dir.glob("round*/plan.json"))]
        self.plan: dict[str, dict] = {}
        for plan in plans:
            for tid, config in plan.get("trials", {}).items():
                self.plan.setdefault(tid, config)          # generation order: the run's index
        self.pack_of = {t: p for plan in plans for p, ts in plan.get("packs", {}).items() for t in ts}
        source = next((plan["source"] for plan in plans if plan.get("source")), None)
        self.previous = self.dir.parent / source if source else None   # the stage it narrows
        self.settings = next((plan["settings"] for plan in plans if plan.get("settings")), {})
        self.index = {tid: i for i, tid in enumerate(self.plan)}
        values: dict[str, set] = {}
        for config in self.plan.values():
            for k, v in config.items():
                values.setdefault(k, set()).add(json.dumps(v, sort_keys=True))
        self.varied = sorted(k for k, v in values.items() if len(v) > 1 and k not in NOT_VARIED)

    def run_name(self, stage: str, tid: str, config: dict) -> str:
        """`coarse-007 lr=0.0012 weight_decay=3.1e-05 dropout=0.21`: stage, index, varied settings."""
        def short(v):
            return f"{v:.3g}" if isinstance(v, float) else json.dumps(v, separators=(",", ":"))
        shown = " ".join(f"{k}={short(config[k])}" for k in self.varied if k in config)
        index = self.index.get(tid)
        return f"{stage}-{index:03d} {shown}".strip() if index is not None else f"{stage} {tid}"


def varied_columns(table: pd.DataFrame, with_seed: bool = False) -> list[str]:
    """The table's `p.<setting>` columns whose values differ between rows: the searched
    settings (places and execution never; the seed only when asked)."""
    skip = NOT_VARIED if with_seed else NOT_VARIED | {"seed"}
    cols = [c for c in table.columns if c.startswith("p.") and c[2:] not in skip]
    return [c for c in cols if table[c].astype(str).nunique(dropna=True) > 1]


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
    row.update({f"kept_{name}": value for name, value in
                (summary.get("kept_epoch_metrics") or {}).items()})   # e.g. kept_val_r2
    row["config_id"] = config_id(config)
    row["family_id"] = family_id(config)
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
    """The results table at `path` (Parquet), checked for the required columns; a UserError if unreadable."""
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {what} {path}: {err}") from None
    return check_table(table, f"{what} {path}")


def check_table(table: pd.DataFrame, where: str = "results table") -> pd.DataFrame:
    """`table` itself when it has every REQUIRED_COLUMNS column; else a UserError naming the missing ones."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise UserError(f"{where}: missing column(s) {', '.join(missing)}")
    return table


def table_mode(table: pd.DataFrame, where: str = "results table", default: str | None = None) -> str:
    """`max` or `min`: the one optimisation direction of every row (written by training:
    alchemist.train.metrics.direction); `default` for a table without any (no trial finished)."""
    modes = sorted(set(table["mode"].dropna().astype(str))) if "mode" in table else []
    if not modes and default:
        return default
    if len(modes) != 1 or modes[0] not in ("max", "min"):
        raise UserError(f"{where}: expected one mode (max or min) in column `mode`, got {modes}")
    return modes[0]
