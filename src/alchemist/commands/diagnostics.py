"""`alchemist diagnostics`: the LR range test (PB-13) and the sanity checks (PB-24) in one process
(the pipeline's diagnostics job: one torch start-up instead of two; `alchemist publish --also
diagnostics` syncs the folder to MLflow with a stage's)."""
from __future__ import annotations

from pathlib import Path

from alchemist.commands import lr_find, sanity
from alchemist.commands.trial_args import add_trial_arguments, trial_from_args

HELP = ("LR range test and sanity checks on one trial's settings: lr_find.{parquet,png,json} under "
        "--out-dir and the sanity report --out")


def add_arguments(p) -> None:
    """The options of `alchemist diagnostics`: a trial's settings and data, LR test folder, sanity report."""
    add_trial_arguments(p)
    p.add_argument("--out-dir", type=Path, required=True,
                   help="the diagnostics folder: lr_find.parquet, lr_find.png, lr_find.json")
    p.add_argument("--out", required=True, help="the sanity checks' JSON report")
    p.set_defaults(min_lr=1e-7, max_lr=10.0, steps=200, rows=32, sanity_steps=300)


def run(args) -> int:
    """Run the LR range test and sanity checks on one trial, writing both; returns 0 (failed checks too)."""
    trial = trial_from_args(args.trial, args.set)
    lr_find.run_lr_find(trial, args)
    args.steps = args.sanity_steps
    sanity.run_sanity(trial, args)
    return 0
