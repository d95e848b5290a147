"""`alchemist lockbox`: how often the test set was opened, when, and why (PB-32)."""
from __future__ import annotations

import argparse
from pathlib import Path

from alchemist.results_layout import add_results_argument, layout

HELP = "Show the test-set lockbox ledger: openings, unseals and their reasons."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `alchemist lockbox`: the ledger, the prepared data (its seal is read), --json."""
    add_results_argument(p)
    p.add_argument("--ledger", type=Path, default=None,
                   help="the lockbox ledger (default: <results>/lockbox/ledger.jsonl)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="prepared data: its seal (lockbox.jsonl) is read too (default: <results>/data)")
    p.add_argument("--json", action="store_true", help="print the status as JSON")


def run(args: argparse.Namespace) -> int:
    """Print the local copies' lockbox status (openings, unseals, tampering) as text or --json; returns 0."""
    import json
    import sys

    from alchemist.lockbox.ledger import local_events
    from alchemist.lockbox.policy import status
    from alchemist.report.pages import lockbox_status

    under = layout(args)
    merged = local_events(args.data_dir or under.data, args.ledger or under.ledger)
    state = {**status(merged.events), "tampering": merged.problems}
    sys.stdout.write(json.dumps(state, indent=2) + "\n" if args.json else lockbox_status(state))
    return 0      # tampering is shown (TAMPERING lines) and refuses every opening
