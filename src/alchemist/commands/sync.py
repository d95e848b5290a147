"""`alchemist sync`: copy the sweep's files into MLflow (idempotent; backfills after an outage).

`--soft` is the outage-safe mode of the pipeline rule: whatever goes wrong with tracking, print
ONE warning, write the marker `{synced: false, reason}` and exit 0 so the sweep goes on. Without
it an unreachable backend is one error line and exit 1.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

from alchemist.results_layout import add_results_argument, layout

from alchemist.atomic import write_json

HELP = ("Sync results/<stage>/trials/* into MLflow: a parent run per stage, a child run per "
        "trial (idempotent, keyed by trial id). --soft never fails (pipeline rule).")


def add_arguments(p) -> None:
    """The options of `alchemist sync`: results, MLflow, stages, trials, data, plots, --soft, the marker."""
    add_results_argument(p)
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                        "sqlite:///<abs results>/mlflow.db with artifacts in results/mlartifacts)")
    p.add_argument("--experiment", default="alchemist", help="MLflow experiment name")
    p.add_argument("--stage", nargs="+", default=None, metavar="NAME",
                   help="only these stage folders (default: every stage folder)")
    p.add_argument("--trial", nargs="+", default=None, metavar="ID",
                   help="only these trial ids (needs exactly one --stage; the stage's figures are left "
                        "to a whole-stage sync or publish)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="prepared data for the dataset inputs (default: <results>/data)")
    p.add_argument("--plots-dir", type=Path, default=None,
                   help="keep the generated PNGs under <plots-dir>/<stage>/ (default: temporary)")
    p.add_argument("--soft", action="store_true",
                   help="outage-safe: if the backend is unreachable, warn once, write the marker "
                        "with synced=false and exit 0")
    p.add_argument("--marker", type=Path, default=None,
                   help="JSON written at the end: {synced: true|false, reason|stages}")


def run(args) -> int:
    """Sync the chosen stages (or trials of one stage) into MLflow; returns 0, or 1 when the backend is
    unreachable without --soft. A UserError on a missing folder, or --trial without exactly one --stage."""
    from alchemist.errors import UserError
    from alchemist.track.sync import sync_all, sync_stage

    if not args.results.is_dir():
        raise UserError(f"results folder {args.results} does not exist")
    missing = [s for s in args.stage or [] if not (args.results / s).is_dir()]
    if missing:
        raise UserError(f"no stage folder {', '.join(missing)} under {args.results}")
    if args.trial and len(args.stage or []) != 1:
        raise UserError("--trial needs exactly one --stage")
    uri = tracking_uri(args)
    common = dict(experiment=args.experiment, data_dir=args.data_dir or layout(args).data,
                  plots_dir=args.plots_dir)
    if args.trial:
        return guarded(lambda: sync_stage(args.results / args.stage[0], tracking_uri=uri,
                                          trial_ids=set(args.trial), **common), args, uri)
    return guarded(lambda: sync_all(args.results, tracking_uri=uri, stages=args.stage, **common),
                   args, uri)


def tracking_uri(args) -> str:
    """The tracking URI: --tracking-uri, else $MLFLOW_TRACKING_URI, else the SQLite store under --results."""
    from alchemist.track.backend import default_tracking_uri

    return args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(args.results)


def guarded(sync, args, uri: str) -> int:
    """Run `sync()`; report what it did and write the marker. With --soft any failure is one
    warning (with the backfill command), a marker `synced: false` and exit 0; without, an
    unreachable backend is one error line and exit 1."""
    from alchemist.track.backend import BackendUnavailable

    try:
        reports = sync()
    except Exception as err:  # noqa: BLE001 - in --soft mode tracking never stops the sweep
        if not (args.soft or isinstance(err, BackendUnavailable)):
            raise
        reason = f"{type(err).__name__}: {err}".splitlines()[0][:500]
        write_marker(args.marker, synced=False, reason=reason, tracking_uri=uri,
                     time=time.strftime("%Y-%m-%dT%H:%M:%S"))
        if args.soft:
            print(f"WARNING: MLflow sync skipped ({reason}); results stay in files; to backfill "
                  f"when it is back: alchemist sync --results {args.results} --tracking-uri {uri} "
                  f"--experiment {args.experiment}", file=sys.stderr)
            return 0
        print(f"alchemist sync: error: {reason}", file=sys.stderr)
        return 1
    reports = reports if isinstance(reports, list) else [reports]
    for r in reports:
        print(f"{r.stage}: {r.created} created, {r.resumed} resumed, {r.skipped} unchanged, "
              f"{r.replaced} replaced, {r.points} metric points (parent run {r.parent_run_id})")
    write_marker(args.marker, synced=True, tracking_uri=uri, stages=[asdict(r) for r in reports])
    return 0


def write_marker(marker: Path | None, **content) -> None:
    """Atomically write the sync marker JSON (the sync rule's output)."""
    if marker is not None:
        write_json(marker, content)
