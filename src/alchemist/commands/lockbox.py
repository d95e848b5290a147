"""`alchemist lockbox`: how often the test set was opened, when, and why (PB-32)."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Show the test-set lockbox ledger: openings, unseals and their reasons."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ledger", type=Path, default=Path("results/lockbox/ledger.jsonl"))
    p.add_argument("--json", action="store_true", help="print the status as JSON")


def run(args: argparse.Namespace) -> int:
    import json

    from alchemist.lockbox import read_ledger, status

    state = status(read_ledger(args.ledger))
    if args.json:
        print(json.dumps(state, indent=2))
        return 0
    print(f"lockbox: the test set has been opened {state['openings']} time(s)")
    for ev in state["evaluations"]:
        r = ev.get("result") or {}
        print(f"  opening #{ev['opening']} on {ev['time']}: {r.get('metric')} "
              f"{r.get('test_mean')} → {ev['result_file']}")
    for u in state["unseals"]:
        print(f"  unsealed on {u['time']}: {u['reason']}")
    return 0
