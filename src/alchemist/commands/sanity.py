"""`alchemist sanity`: initial-loss and overfit-a-tiny-batch checks (PB-24)."""
from __future__ import annotations

from alchemist.commands.trial_args import add_trial_arguments, trial_from_args

HELP = "sanity checks before a search: initial loss ≈ ln C, and a tiny batch can be overfit"


def add_arguments(p) -> None:
    """The options of `alchemist sanity`: one trial's settings and data, report, tiny batch, --strict."""
    add_trial_arguments(p)
    p.add_argument("--out", required=True, help="the JSON report")
    p.add_argument("--rows", type=int, default=32, help="size of the tiny batch")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--strict", action="store_true", help="exit 1 when a check fails")


def run(args) -> int:
    """Run the sanity checks on a trial, writing the report; returns 1 if --strict and one failed, else 0."""
    report = run_sanity(trial_from_args(args.trial, args.set), args)
    return 1 if args.strict and not report["passed"] else 0


def run_sanity(trial: dict, args) -> dict:
    """The checks on `trial`; writes the JSON report to --out."""
    import json

    from alchemist.train.sanity import sanity

    report = sanity(trial, args.data_dir, args.out, rows=args.rows, steps=args.steps,
                    device=args.device, threads=args.threads)
    print(json.dumps({k: report[k] for k in ("passed", "advice")}), flush=True)
    return report
