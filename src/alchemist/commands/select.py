"""`alchemist select`: the winner of a repeat stage by mean over seeds, with its confidence interval."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Select the winning configuration of a repeat stage (mean, std, confidence interval over seeds)."


def _confidence(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `alchemist select`: the repeat stage's table, confidence level, source name, out."""
    p.add_argument("--table", required=True, help="results table (parquet) of the repeat stage")
    p.add_argument("--confidence", type=_confidence, default=0.95,
                   help="confidence level of the intervals (default 0.95; search.stages[].confidence)")
    p.add_argument("--source", default=None,
                   help="the repeat stage's name (recorded; default: the table's folder name)")
    p.add_argument("--out", required=True, help="where to write winner.json (written atomically)")


def run(args: argparse.Namespace) -> int:
    """Pick the repeat stage's winner by mean over seeds; writes winner.json and prints it; returns 0."""
    from alchemist.analysis.select import describe_winner, select_winner
    from alchemist.analysis.tables import read_table
    from alchemist.atomic import write_json

    table = read_table(args.table, "--table")
    result = select_winner(table, args.confidence, where=f"--table {args.table}",
                           source=args.source or Path(args.table).parent.name)
    write_json(args.out, result, allow_nan=False)
    print(describe_winner(result), flush=True)
    return 0
