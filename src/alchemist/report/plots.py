"""Figures of a sweep (matplotlib, Agg, PNG): learning curves (PB-22), metric vs each
hyperparameter (log axes for log-scaled settings, PB-27), the coarse → fine narrowing (PB-29),
the repeat stage's seed spread (PB-31) and the LR range test (PB-13).

Figures take the stage table (alchemist.analysis.tables); configurations and their intervals come
from alchemist.analysis.stats, so a figure's labels are the ids found in every other file.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from alchemist.analysis.stats import configurations, ranked_configurations  # noqa: E402
from alchemist.analysis.tables import table_mode, varied_columns  # noqa: E402

#: Settings always drawn on a log axis (PB-27); others only when they span > 1.5 decades.
LOG_KEYS = frozenset({"lr", "weight_decay", "l1"})
#: Dropout-like settings stay linear whatever their span (PB-27).
LINEAR_KEYS = frozenset({"dropout", "momentum", "beta1", "beta2", "gamma", "plateau_factor"})


def is_numeric(values: pd.Series) -> bool:
    """Whether a column's values are all numbers (booleans are not): drawn on a numeric axis."""
    vals = values.dropna()
    return len(vals) > 0 and all(isinstance(v, (int, float, np.integer, np.floating))
                                 and not isinstance(v, (bool, np.bool_)) for v in vals)


def use_log_axis(name: str, values: pd.Series) -> bool:
    """Log x for lr / weight_decay / l1, or positive values spanning more than 1.5 decades."""
    vals = pd.to_numeric(values, errors="coerce").dropna()
    positive = vals[vals > 0]
    if name.split(".")[-1] in LOG_KEYS:
        return len(positive) > 0
    if name.split(".")[-1] in LINEAR_KEYS:
        return False
    return len(positive) == len(vals) > 1 and math.log10(positive.max() / positive.min()) > 1.5


def _grid(n: int, width: float = 4.0, height: float = 3.2):
    cols = min(n, 3)
    rows = max(1, math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def metric_label(table: pd.DataFrame, column: str = "kept_val_metric") -> str:
    """An axis label with the metric's name: kept_val_metric → best val_accuracy."""
    names = table["metric"].dropna().astype(str).unique() if "metric" in table else []
    return column.replace("_val_metric", f" val_{names[0]}") if len(names) == 1 else column


def _log_x(ax, values) -> None:
    """A log x axis labelled at 1, 2 and 5 per decade (only at powers of ten beyond two decades),
    as 5e-3 rather than 5×10⁻³, unlabelled minor ticks: labels that never overlap."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    vals = pd.to_numeric(values, errors="coerce")
    vals = vals[vals > 0]
    wide = len(vals) and math.log10(vals.max() / vals.min()) > 2
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0,) if wide else (1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(
        lambda x, _: f"{x:.0e}".replace("e-0", "e-").replace("e+0", "e")))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _margins(fig, left=1.0, right=0.25, bottom=0.75, top=0.6, wspace=0.4, hspace=0.6) -> None:
    """Fixed margins in inches (room for tick labels, axis labels and a title). tight_layout
    draws the whole figure once more to measure it: about half of a figure's cost."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h,
                        wspace=wspace, hspace=hspace)


def save_figure(fig, out_png: Path, **margins) -> Path:
    """Write `fig` to `out_png` (its folder made, margins fitted) and close it; returns the path."""
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    _margins(fig, **margins)
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png


def learning_curve(metrics_df: pd.DataFrame, out_png: Path, title: str | None = None,
                   kept_epoch: int | None = None) -> Path:
    """Train vs validation loss and metric per epoch (PB-22); best epoch marked if given."""
    df = metrics_df.replace([np.inf, -np.inf], np.nan)
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, what in ((ax_loss, "loss"), (ax_metric, "metric")):
        for split, style in (("train", "-"), ("val", "--")):
            col = f"{split}_{what}"
            if col in df:
                ax.plot(df["epoch"], df[col], style, marker=".", label=col)
        if kept_epoch is not None:
            ax.axvline(kept_epoch, color="grey", ls=":", label=f"best epoch {kept_epoch}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return save_figure(fig, out_png, wspace=0.22)


def metric_vs_params(table_df: pd.DataFrame, out_png: Path, metric: str = "kept_val_metric",
                     title: str | None = None) -> Path:
    """One subplot per varying hyperparameter: the trial metric against its value."""
    ok = table_df[pd.to_numeric(table_df[metric], errors="coerce").notna()]
    params = varied_columns(table_df)
    fig, axes = _grid(max(1, len(params)))
    if not params:
        axes[0].text(0.5, 0.5, "no varying hyperparameters", ha="center", va="center")
    for ax, col in zip(axes, params):
        y = pd.to_numeric(ok[metric])
        if is_numeric(table_df[col]):
            ax.scatter(pd.to_numeric(ok[col]), y, s=18, alpha=0.8)
            if use_log_axis(col[2:], table_df[col]):
                _log_x(ax, table_df[col])
        else:
            cats = sorted(table_df[col].astype(str).unique())
            pos = ok[col].astype(str).map({c: i for i, c in enumerate(cats)})
            jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(pos))
            ax.scatter(pos + jitter, y, s=18, alpha=0.8)
            ax.set_xticks(range(len(cats)), cats, rotation=30, ha="right", fontsize=8)
        ax.set_xlabel(col[2:])
        ax.set_ylabel(metric_label(table_df, metric))
        ax.grid(alpha=0.3)
    failed = len(table_df) - len(ok)
    fig.suptitle((title or "metric vs hyperparameters") + (f" ({failed} trials without a metric)"
                                                           if failed else ""))
    return save_figure(fig, out_png)


def narrowing(wide_table: pd.DataFrame, narrow_table: pd.DataFrame, out_png: Path,
              names: tuple[str, str]) -> Path:
    """Per hyperparameter: the values tried in the earlier (wide) stage vs the narrowed stage;
    `names` are the two stages' names from the config."""
    both = pd.concat([wide_table.assign(_stage=names[0]), narrow_table.assign(_stage=names[1])],
                     ignore_index=True)
    params = varied_columns(both)
    fig, axes = _grid(max(1, len(params)), height=2.2)
    if not params:
        axes[0].text(0.5, 0.5, "no varying hyperparameters", ha="center", va="center")
    for ax, col in zip(axes, params):
        numeric = is_numeric(both[col])
        cats = sorted(both[col].dropna().astype(str).unique())
        for y, stage in enumerate(names):
            vals = both.loc[both["_stage"] == stage, col].dropna()
            x = (pd.to_numeric(vals) if numeric
                 else vals.astype(str).map({c: i for i, c in enumerate(cats)}))
            if len(x):
                ax.hlines(y, x.min(), x.max(), lw=6, alpha=0.35, color=f"C{y}")
                ax.plot(x, [y] * len(x), "|", ms=12, color=f"C{y}")
        if numeric and use_log_axis(col[2:], both[col]):
            _log_x(ax, both[col])
        if not numeric:
            ax.set_xticks(range(len(cats)), cats, rotation=30, ha="right", fontsize=8)
        ax.set_yticks([0, 1], list(names))
        ax.set_ylim(-0.6, 1.6)
        ax.set_title(col[2:])
    fig.suptitle(f"{names[0]} → {names[1]}: ranges searched (PB-29)")
    return save_figure(fig, out_png)


def seed_spread(repeat_table: pd.DataFrame, out_png: Path, confidence: float = 0.95) -> Path:
    """Per configuration, best first (by mean): each seed's kept_val_metric as a point, with
    mean ± CI (PB-31)."""
    mode = table_mode(repeat_table, "the repeat table", default="max")
    configs = ranked_configurations(configurations(repeat_table.itertuples(index=False), confidence), mode)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(configs) + 2), 3.8))
    rng = np.random.default_rng(0)
    for i, c in enumerate(configs):
        ax.scatter(i + rng.uniform(-0.12, 0.12, c["n"]), c["values"], s=16, alpha=0.7, color="C0")
        ax.errorbar(i + 0.3, c["mean"], yerr=c["ci_half_width"] or 0.0, fmt="o", color="C3", capsize=4)
    ax.set_xticks(range(len(configs)), [f"#{i + 1} {c['config_id']}\n(n={c['n']})" for i, c in enumerate(configs)],
                  fontsize=8)
    ax.set_ylabel(metric_label(repeat_table))
    ax.set_title(f"seed spread: each seed, mean ± {confidence:.0%} CI (PB-31)", fontsize=10)
    ax.grid(alpha=0.3)
    return save_figure(fig, out_png)


def loss_limits(loss: pd.Series) -> tuple[float, float]:
    """y-limits that show the fall and the start of the blow-up: from just under the lowest
    loss (never below 0 for a non-negative loss) to 3 falls above the first."""
    first, low = float(loss.iloc[0]), float(loss.min())
    fall = abs(first - low) + 1e-12
    top = max(first, low) + 3 * fall
    bottom = low - 0.1 * (top - low)
    return (max(bottom, 0.0) if low >= 0 else bottom), top


def lr_find(df: pd.DataFrame, suggested_lr: float | None, out_png: Path) -> Path:
    """Loss against learning rate (log x) with the suggested value marked (PB-13)."""
    d = df.replace([np.inf, -np.inf], np.nan).dropna(subset=["lr", "loss"])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(d["lr"], d["loss"], label="loss", alpha=0.5 if "smoothed_loss" in d else 1.0)
    if "smoothed_loss" in d:
        ax.plot(d["lr"], d["smoothed_loss"], label="smoothed loss")
    if suggested_lr:
        ax.axvline(suggested_lr, color="C3", ls="--", label=f"suggested lr = {suggested_lr:.3g}")
    if len(d):
        ax.set_ylim(*loss_limits(d["loss"]))
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    ax.set_title("LR range test (PB-13)")
    return save_figure(fig, out_png)


MAX_CURVES = 200     # a stage figure draws the best this many trials' curves


def stage_curves(table: pd.DataFrame, stage_dir: Path, out_png: Path) -> Path | None:
    """Every trial's validation loss and metric per epoch in one figure (PB-22): thin lines, the
    best configuration's trials highlighted; the best MAX_CURVES trials when there are more."""
    frames = []
    ok = table.assign(_v=pd.to_numeric(table["kept_val_metric"], errors="coerce"))
    mode = table_mode(ok, "the stage table", default="max")
    ok = ok.sort_values("_v", ascending=mode == "min", na_position="last").head(MAX_CURVES)
    for tid in ok["trial_id"]:
        path = Path(stage_dir) / "trials" / str(tid) / "metrics.parquet"
        if path.exists():
            frames.append((str(tid), pd.read_parquet(path, columns=["epoch", "val_loss", "val_metric"])))
    if not frames:
        return None
    best = ranked_configurations(configurations(table.itertuples(index=False)), mode)
    highlight = set(best[0]["trial_ids"]) if best else set()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for tid, df in frames:
        df = df.replace([np.inf, -np.inf], np.nan)
        on = tid in highlight
        for ax, col in zip(axes, ("val_loss", "val_metric")):
            ax.plot(df["epoch"], df[col], color="C3" if on else "grey", lw=1.6 if on else 0.6,
                    alpha=0.9 if on else 0.35, zorder=3 if on else 1)
    for ax, col in zip(axes, ("val_loss", "val_metric")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(col)
        ax.grid(alpha=0.3)
    label = f"best configuration {best[0]['config_id']} in red" if best else "no usable trial"
    fig.suptitle(f"{Path(stage_dir).name}: learning curves of {len(frames)} trials ({label})", fontsize=10)
    return save_figure(fig, out_png)


def trial_curve(trial_dir: Path, out_png: Path) -> Path:
    """The learning curve of one trial folder (`metrics.parquet`), titled with its status."""
    trial_dir = Path(trial_dir)
    summary_path = trial_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    title = f"{trial_dir.name}: {summary.get('status', '?')}"
    label = (summary.get("diagnosis") or {}).get("label")
    return learning_curve(pd.read_parquet(trial_dir / "metrics.parquet"), out_png,
                          title=f"{title} ({label})" if label else title,
                          kept_epoch=summary.get("kept_epoch"))
