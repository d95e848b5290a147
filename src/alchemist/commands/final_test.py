"""`alchemist final-test`: the one-time test-set evaluation (PB-32), guarded by the lockbox — the
step called final_test everywhere (the rule, this module, alchemist.lockbox.evaluate.final_test;
the CLI spells commands with a hyphen). pytest collects only tests/ (pyproject's testpaths)."""
from __future__ import annotations

import argparse
from pathlib import Path

from alchemist.results_layout import add_winner_arguments, layout

HELP = ("Evaluate the selected configuration (every seed) on the test split ONCE: mean ± 95% CI "
        "and the validation→test gap, recorded in a ledger (file + MLflow). Any later attempt is "
        "refused, citing the first evaluation, unless --unseal-reason gives a new reason.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `alchemist final-test`: --confirm, data, winner, trials, ledger, unsealing, MLflow."""
    p.add_argument("--confirm", action="store_true", required=True,
                   help="required: you mean to spend the test set (it can be opened once)")
    add_winner_arguments(p)
    p.add_argument("--out-dir", type=Path, default=None, help="evaluation files (default: <results>/test)")
    p.add_argument("--ledger", type=Path, default=None,
                   help="the lockbox ledger (default: <results>/lockbox/ledger.jsonl)")
    p.add_argument("--unseal-reason", default=None,
                   help="re-open an already evaluated test set; the reason is recorded for good")
    p.add_argument("--config-hash", default="", help="hash of the pipeline config (recorded)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: the results store)")
    p.add_argument("--experiment", default="alchemist", help="MLflow experiment")
    p.add_argument("--no-tracking", action="store_true",
                   help="record in the ledger files only (an existing MLflow store is still read)")
    p.add_argument("--model-name", default=None,
                   help="the registered winner whose versions get the test result (default: <experiment>-winner)")
    p.add_argument("--status-file", type=Path, default=None,
                   help="rewrite this lockbox status file (the report's) after the opening")


def remote_ledger(args: argparse.Namespace, results: Path):
    """The MLflow copy of the ledger; with --no-tracking it is still read (if the store exists)."""
    from alchemist.track.ledger import LockboxLedger

    return LockboxLedger(args.tracking_uri, args.experiment, results, read_only=args.no_tracking)


def run(args: argparse.Namespace) -> int:
    """Evaluate the winner on the test split if the lockbox allows; prints the result, rewrites
    --status-file and, unless --no-tracking, records it in MLflow; returns 0 (a refusal raises)."""
    from alchemist.atomic import write_text
    from alchemist.lockbox.evaluate import final_test, format_result
    from alchemist.report.pages import lockbox_status

    under = layout(args)
    outcome = final_test(data_dir=args.data_dir or under.data,
                         winner_file=args.winner or under.winner(),
                         trials_dir=args.trials_dir, out_dir=args.out_dir or under.test,
                         ledger=args.ledger or under.ledger, unseal_reason=args.unseal_reason,
                         config_hash=args.config_hash, remote=remote_ledger(args, under.root))
    print(format_result(outcome))
    print(f"result: {outcome['event']['result_file']}")
    if args.status_file is not None:
        write_text(args.status_file, lockbox_status(outcome["status"]))
    if not args.no_tracking:
        record_in_mlflow(args, outcome)
    return 0


def record_in_mlflow(args: argparse.Namespace, outcome: dict) -> None:
    """The test result on the winner's MLflow run and registered versions; a tracking failure is
    one warning (the ledger already holds the result)."""
    import sys

    from alchemist.commands.sync import tracking_uri
    from alchemist.track.backend import connect
    from alchemist.track.selection import record_test

    winner = Path(outcome["winner_file"])
    try:
        client, exp_id = connect(tracking_uri(args), args.experiment)
        record_test(client, exp_id, winner.parent.name, args.model_name or f"{args.experiment}-winner",
                    outcome["result"], outcome["event"].get("opening", 1))
    except Exception as err:  # noqa: BLE001 - the ledger holds the result; MLflow is a copy
        print(f"alchemist final-test: warning: the test result is not in MLflow ({type(err).__name__}: "
              f"{str(err).splitlines()[0][:200]}); it is in {outcome['event']['result_file']}", file=sys.stderr)
