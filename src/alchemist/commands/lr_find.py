"""`alchemist lr-find`: the LR range test (PB-13)."""
from __future__ import annotations

HELP = "LR range test: loss against an exponentially rising LR, table, plot and suggested LR"


def add_trial_arguments(p) -> None:
    """Shared by lr-find and sanity: which trial settings and data to use."""
    p.add_argument("--data-dir", required=True, help="prepared data (prep.json, train/val parquet)")
    p.add_argument("--trial", help="trial settings: a JSON file or an inline JSON object (defaults fill the rest)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting (JSON value)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int)


def add_arguments(p) -> None:
    add_trial_arguments(p)
    p.add_argument("--out-dir", required=True, help="writes lr_find.parquet, lr_find.png, lr_find.json")
    p.add_argument("--min-lr", type=float, default=1e-7)
    p.add_argument("--max-lr", type=float, default=10.0)
    p.add_argument("--steps", type=int, default=200)


def run(args) -> int:
    from alchemist.lr_find import lr_find
    from alchemist.train.pack import trial_from_args

    result = lr_find(trial_from_args(args.trial, args.set), args.data_dir, args.out_dir,
                     min_lr=args.min_lr, max_lr=args.max_lr, steps=args.steps,
                     device=args.device, threads=args.threads)
    print(f"suggested lr: {result['suggested_lr']}")
    return 0
