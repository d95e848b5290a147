"""`alchemist plot`: the PNG figures of one stage folder (no MLflow needed)."""
from __future__ import annotations

import json
from pathlib import Path

HELP = ("Draw a stage's figures: metric vs each hyperparameter, coarse → fine narrowing, seed "
        "spread, LR range test, the stage's learning curves in one figure, for searched stages the "
        "settings' importance (fANOVA) and the best value by trial, and (with --curves) one "
        "learning-curve PNG per trial (PB-22).")


def add_arguments(p) -> None:
    """The options of `alchemist plot`: stage folder, PNG folder, previous stage, --curves, a manifest."""
    p.add_argument("--stage-dir", type=Path, required=True, help="results/<stage>")
    p.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    p.add_argument("--previous", type=Path, default=None,
                   help="the coarser stage folder this stage narrows (draws narrowing.png)")
    p.add_argument("--curves", action="store_true",
                   help="also draw curves/<trial_id>.png for every finished trial")
    p.add_argument("--manifest", type=Path, default=None,
                   help="JSON list of the PNGs written (a Snakemake output)")


def run(args) -> int:
    """Draw the stage's PNGs, print their paths and write the --manifest list; returns 0. A UserError when
    the stage or --previous folder is missing."""
    from alchemist.report import figures
    from alchemist.errors import UserError

    if not args.stage_dir.is_dir():
        raise UserError(f"stage folder {args.stage_dir} does not exist")
    if args.previous is not None and not args.previous.is_dir():
        raise UserError(f"--previous folder {args.previous} does not exist")
    made = figures.stage_figures(args.stage_dir, args.out, args.previous, curves=args.curves)
    for path in made:
        print(path)
    if args.manifest is not None:
        args.manifest.parent.mkdir(parents=True, exist_ok=True)
        args.manifest.write_text(json.dumps([str(p) for p in made], indent=1) + "\n")
    return 0
