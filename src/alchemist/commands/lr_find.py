"""`alchemist lr-find`: the LR range test (PB-13): table, figure and suggested LR."""
from __future__ import annotations

from pathlib import Path

from alchemist.commands.trial_args import add_trial_arguments, trial_from_args

HELP = "LR range test: loss against an exponentially rising LR, table, plot and suggested LR"


def add_arguments(p) -> None:
    """The options of `alchemist lr-find`: one trial's settings and data, the out folder, LR range, steps."""
    add_trial_arguments(p)
    p.add_argument("--out-dir", required=True, help="writes lr_find.parquet, lr_find.png, lr_find.json")
    p.add_argument("--min-lr", type=float, default=1e-7)
    p.add_argument("--max-lr", type=float, default=10.0)
    p.add_argument("--steps", type=int, default=200)


def run(args) -> int:
    """Run the LR range test on one trial; writes table, plot and JSON, prints the suggested LR; returns 0."""
    run_lr_find(trial_from_args(args.trial, args.set), args)
    return 0


def run_lr_find(trial: dict, args) -> dict:
    """The range test on `trial`; writes lr_find.{parquet,png,json} under --out-dir."""
    from alchemist.report.plots import lr_find as plot_lr_find
    from alchemist.atomic import replacing, write_json
    from alchemist.train.lr_find import lr_find

    table, result = lr_find(trial, args.data_dir, min_lr=args.min_lr, max_lr=args.max_lr,
                            steps=args.steps, device=args.device, threads=args.threads)
    out = Path(args.out_dir)
    with replacing(out / "lr_find.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    plot_lr_find(table, result["suggested_lr"], out / "lr_find.png")
    write_json(out / "lr_find.json", result)
    print(f"suggested lr: {result['suggested_lr']}", flush=True)
    return result
