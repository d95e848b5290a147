"""`alchemist aggregate`: the per-stage (or per-round) tables from the trial folders."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("Build a stage's tables from its trial folders: trials.parquet/.csv (one row per trial) "
        "and, with --summary, seeds.parquet/.csv (mean ± 95% CI per configuration) and "
        "leaderboard.csv/.html.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `alchemist aggregate`: the pack done-files, the trials folder, the table to write."""
    p.add_argument("--packs", nargs="+", type=Path, required=True,
                   help="the pack done-files (results/<stage>/round<r>/packs/<pack>.json)")
    p.add_argument("--trials-dir", type=Path, required=True, help="results/<stage>/trials")
    p.add_argument("--out", type=Path, required=True, help="the trials table to write (.parquet)")
    p.add_argument("--summary", action="store_true", help="also write seeds and leaderboard tables")


def run(args: argparse.Namespace) -> int:
    """Write the stage's trials table (with --summary also seeds and leaderboard); prints the trial count
    by status; returns 0."""
    from alchemist.analysis.aggregate import write_tables
    from alchemist.analysis.tables import trials_table
    from alchemist.atomic import write_text
    from alchemist.report.pages import leaderboard_page

    table = trials_table(args.packs, args.trials_dir)
    board = write_tables(table, args.out, args.summary)
    if board is not None:        # the stage's leaderboard page in the report
        write_text(args.out.with_name("leaderboard.html"), leaderboard_page(board, args.out.parent.name))
    counts = table["status"].value_counts().to_dict() if len(table) else {}
    print(f"aggregated {len(table)} trials {counts} → {args.out}")
    return 0
