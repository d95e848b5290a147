"""A stage's figures, decided here (`stage_figures`: what `alchemist plot`, `publish` and `sync` draw
and the report shows; plots.py draws them), and
what a search stage teaches beyond its best trial: which settings mattered (fANOVA through
optuna.importance, on a study rebuilt from the stage table), how the best value grew as the
stage sampled (Optuna's history plot), and how the settings combine (contour and parallel
coordinates), drawn with Optuna's matplotlib figures and labelled with the metric's name."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from alchemist.report import plots
from alchemist.report.plots import is_numeric, save_figure, metric_label, use_log_axis
from alchemist.analysis.tables import StagePlans, stage_table, table_mode, varied_columns

MIN_IMPORTANCE_TRIALS = 8      # fewer usable trials tell nothing about which setting mattered


def _study(table: pd.DataFrame, columns: list[str], stage_dir: Path):
    """An Optuna study rebuilt from the table's usable trials (numeric varied settings), in the
    order the stage generated them: what optuna.importance and its history plot read."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import create_trial

    from alchemist.analysis.stats import usable_value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    order = StagePlans(stage_dir).index
    rows = sorted(table.to_dict("records"), key=lambda r: (order.get(r["trial_id"], 1 << 30), r["trial_id"]))
    dists = {}
    for col in columns:
        if is_numeric(table[col]):
            v = pd.to_numeric(table[col])
            if v.min() < v.max():
                dists[col[2:]] = FloatDistribution(float(v.min()), float(v.max()),
                                                   log=bool(use_log_axis(col[2:], table[col])))
        else:
            dists[col[2:]] = CategoricalDistribution(sorted(table[col].astype(str).unique()))
    study = optuna.create_study(direction="minimize" if table_mode(table, default="max") == "min" else "maximize")
    trials = []
    for r in rows:
        value = usable_value(r["status"], r["kept_val_metric"])
        if value is not None:
            params = {k: (float(r[f"p.{k}"]) if isinstance(d, FloatDistribution) else str(r[f"p.{k}"]))
                      for k, d in dists.items()}
            trials.append(create_trial(params=params, distributions=dists, value=value))
    study.add_trials(trials)
    return study


def _title(ax, text: str) -> None:
    for loc in ("center", "right"):          # Optuna's own titles
        ax.set_title("", loc=loc)
    ax.set_title(text, loc="left")


def importance_and_history(table: pd.DataFrame, stage_dir: Path, out_dir: Path) -> list[Path]:
    """Which settings mattered (fANOVA, optuna.importance; PB-27) and the best value found
    as the stage went on; only for stages with enough usable trials and a searched setting."""
    import warnings

    import optuna
    import optuna.visualization.matplotlib as ovm

    columns = varied_columns(table)
    if StagePlans(stage_dir).settings.get("kind", "search") not in ("search", "halving"):
        return []                                      # a repeat stage varies seeds, not settings
    study = _study(table, columns, Path(stage_dir)) if columns else None
    if study is None or len(study.trials) < MIN_IMPORTANCE_TRIALS or not study.trials[0].params:
        return []
    name = metric_label(table)
    made = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                       # ExperimentalWarning
        try:     # fANOVA needs the trials to differ: all scoring the same explains nothing
            ax = ovm.plot_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
        except RuntimeError as err:
            print(f"alchemist: no importance figure for {Path(stage_dir).name}: {err}", file=sys.stderr)
            ax = None
        if ax is not None:
            _title(ax, f"{Path(stage_dir).name}: what mattered for {name} (fANOVA)")
            ax.set_xlabel("share of the variance explained")
            if ax.get_legend():
                ax.get_legend().remove()
            ax.figure.set_size_inches(7, 1.2 + 0.5 * len(study.trials[0].params))
            made.append(save_figure(ax.figure, Path(out_dir) / "importance.png", left=1.6))
        ax = ovm.plot_optimization_history(study)
        _title(ax, f"{Path(stage_dir).name}: {name} by trial, in sampling order")
        ax.set_ylabel(name)
        for text in ax.get_legend().get_texts() if ax.get_legend() else []:
            text.set_text({"Objective Value": name, "Best Value": "best so far"}.get(text.get_text(),
                                                                                   text.get_text()))
        ax.figure.set_size_inches(8, 3.8)
        made.append(save_figure(ax.figure, Path(out_dir) / "history.png", right=1.8))
        made += settings_figures(study, Path(stage_dir).name, name, Path(out_dir))
    return made


CONTOUR_PARAMS = 4      # a contour grid of n settings has n² panels: the first few are drawn


def settings_figures(study, stage: str, name: str, out_dir: Path) -> list[Path]:
    """How the settings combine (what Optuna users look at): the metric over every pair of
    searched settings (plot_contour, interpolated between trials) and each trial as one line
    across all of them (plot_parallel_coordinate)."""
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    made = []
    params = list(study.trials[0].params)
    if len(params) >= 2:
        side = 2.6 * min(len(params), CONTOUR_PARAMS)
        with plt.rc_context({"figure.figsize": (max(side + 1.5, 6), max(side, 4.5))}):
            axes = ovm.plot_contour(study, params=params[:CONTOUR_PARAMS])
        fig = axes.flat[0].figure if hasattr(axes, "flat") else axes.figure
        fig.suptitle(f"{stage}: {name} over pairs of settings (interpolated between trials)", x=0.02,
                     ha="left")
        made.append(_save_as_laid_out(fig, name, out_dir / "contour.png"))
    with plt.rc_context({"figure.figsize": (2.2 * len(params) + 3, 4.5)}):
        ax = ovm.plot_parallel_coordinate(study)
    _title(ax, f"{stage}: each trial across its settings, coloured by {name}")
    ax.set_xticklabels([name if t.get_text() == "Objective Value" else t.get_text()
                        for t in ax.get_xticklabels()], rotation=0)
    made.append(_save_as_laid_out(ax.figure, name, out_dir / "parallel_coordinates.png"))
    return made


def _save_as_laid_out(fig, name: str, out: Path) -> Path:
    """Saved without moving Optuna's layout (margins would slide its colour scale over the
    panels); its 'Objective Value' labels say the metric's name."""
    import matplotlib.pyplot as plt

    for ax in fig.axes:
        if ax.get_ylabel() == "Objective Value":
            ax.set_ylabel(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return out


def stage_figures(stage_dir: Path, out_dir: Path, previous_stage_dir: Path | None = None,
                  curves: bool = False) -> list[Path]:
    """Every figure of a stage that its files allow, written under out_dir — what `alchemist
    plot`, `publish` and `sync` draw and the report shows:

    the metric against each varied setting; the narrowing when a previous (coarser) stage is
    given; the seed spread when a configuration was trained with more than one seed; the LR range
    test when the folder holds `lr_find.parquet` (and `lr_find.json` with `suggested_lr`); the
    learning curves in one figure; for searched stages the settings' importance and the
    optimisation history; with `curves`, one learning-curve PNG per trial under curves/.
    """
    stage_dir, out_dir = Path(stage_dir), Path(out_dir)
    table = stage_table(stage_dir)
    made = []
    if len(table):
        made.append(plots.metric_vs_params(table, out_dir / "metric_vs_params.png", title=stage_dir.name))
        if previous_stage_dir is not None and len(previous := stage_table(Path(previous_stage_dir))):
            made.append(plots.narrowing(previous, table, out_dir / "narrowing.png",
                                        (Path(previous_stage_dir).name, stage_dir.name)))
        if table.groupby("config_id")["trial_id"].count().gt(1).any():
            made.append(plots.seed_spread(table, out_dir / "seed_spread.png"))
    if (stage_dir / "lr_find.parquet").exists():
        meta = stage_dir / "lr_find.json"
        made.append(plots.lr_find(pd.read_parquet(stage_dir / "lr_find.parquet"),
                                  json.loads(meta.read_text()).get("suggested_lr") if meta.exists() else None,
                                  out_dir / "lr_find.png"))
    if len(table) and (fig := plots.stage_curves(table, stage_dir, out_dir / "learning_curves.png")):
        made.append(fig)
    if len(table):
        made += importance_and_history(table, stage_dir, out_dir)
    if curves:
        for tid in table["trial_id"] if len(table) else []:
            trial_dir = stage_dir / "trials" / str(tid)
            if (trial_dir / "metrics.parquet").exists():
                made.append(plots.trial_curve(trial_dir, out_dir / "curves" / f"{tid}.png"))
    return made
