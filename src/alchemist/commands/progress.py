"""`alchemist progress`: one line on a stage's round — trials done of its total, the best so far
by the metric's name, time left (alchemist.analysis.progress). The train rule prints it after
each pack, so a sweep's progress shows in the terminal, not only in the pack logs."""
from __future__ import annotations

import argparse

from alchemist.results_layout import add_results_argument

HELP = "Print a stage's progress: trials done of the round's total, the best so far, time left."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `alchemist progress`: the results folder, the stage, the round."""
    add_results_argument(p)
    p.add_argument("--stage", required=True)
    p.add_argument("--round", type=int, default=1, dest="round_")


def run(args: argparse.Namespace) -> int:
    """Print the stage round's progress line (nothing when there is none); returns 0."""
    from alchemist.analysis.progress import stage_line

    line = stage_line(args.results, args.stage, args.round_)
    if line:
        print(f"alchemist: {line}", flush=True)
    return 0
