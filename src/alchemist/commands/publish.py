"""`alchemist publish`: what a researcher looks at after a stage, in one process (the pipeline's
one bookkeeping job per stage): the stage's figures, drawn once, then the stage synced to MLflow
with those figures (outage-safe, as `alchemist sync --soft`)."""
from __future__ import annotations

import argparse
from pathlib import Path

from alchemist.results_layout import add_results_argument, layout

HELP = ("Draw a stage's figures (metric vs each hyperparameter, narrowing, seed spread, learning "
        "curves) and sync the stage into MLflow with them; tracking problems never fail it.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `alchemist publish`: stage or winner.json, figures, --also folders, MLflow, marker."""
    add_results_argument(p)
    p.add_argument("--stage", help="the stage folder's name (or diagnostics)")
    p.add_argument("--selection", type=Path, default=None, metavar="WINNER_JSON",
                   help="instead of a stage: the select stage's winner.json → its MLflow run with the "
                        "winner's model (its seeds averaged; mlflow.pytorch), registered as --model-name")
    p.add_argument("--model-name", default=None, help="registered model name (default: <experiment>-winner)")
    p.add_argument("--figures-dir", type=Path, default=None,
                   help="draw the stage's figures here (default: log the PNGs the stage folder holds)")
    p.add_argument("--previous", type=Path, default=None,
                   help="the stage folder this stage narrows (config `from:`): the narrowing figure")
    p.add_argument("--curves", action="store_true", help="also one learning-curve PNG per trial")
    p.add_argument("--also", nargs="*", default=[], metavar="FOLDER",
                   help="other stage folders to sync with the PNGs they hold (the pipeline: "
                        "diagnostics; a no-op once synced)")
    p.add_argument("--no-tracking", action="store_true", help="figures only")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: the results store)")
    p.add_argument("--experiment", default="alchemist", help="MLflow experiment name")
    p.add_argument("--marker", type=Path, default=None, help="the sync marker JSON")
    p.set_defaults(soft=True, data_dir=None)


def run(args: argparse.Namespace) -> int:
    """Draw (or collect) the stage's figures, print their paths and sync it and the --also folders to
    MLflow; with --selection, publish the winner instead; returns 0 (tracking failures only warn)."""
    from alchemist.commands.sync import guarded, tracking_uri
    from alchemist.errors import UserError

    if args.selection is not None:
        return publish_selection(args)
    from alchemist.report.figures import stage_figures

    if not args.stage:
        raise UserError("give --stage or --selection")
    stage_dir = args.results / args.stage
    if not stage_dir.is_dir():
        raise UserError(f"stage folder {stage_dir} does not exist")
    if args.figures_dir is not None:
        figures = stage_figures(stage_dir, args.figures_dir, args.previous, curves=args.curves)
    else:
        figures = sorted(stage_dir.glob("*.png"))
    for path in figures:
        print(path)
    if args.no_tracking:
        return 0
    from alchemist.track.backend import connect
    from alchemist.track.sync import sync_stage

    uri = tracking_uri(args)

    def sync():
        connection = connect(uri, args.experiment)
        reports = [sync_stage(args.results / other, tracking_uri=uri, experiment=args.experiment,
                              figures=sorted((args.results / other).glob("*.png")),
                              connection=connection)
                   for other in args.also if (args.results / other).is_dir()]
        return reports + [sync_stage(stage_dir, tracking_uri=uri, experiment=args.experiment,
                                     data_dir=layout(args).data, figures=figures,
                                     connection=connection)]
    return guarded(sync, args, uri)


def publish_selection(args: argparse.Namespace) -> int:
    """The select run with the winner's seeds as logged models (outage-safe like the stages)."""
    import json

    import numpy as np
    import torch

    from alchemist.analysis.select import load_winner, winner_trial_dirs
    from alchemist.commands.sync import guarded, tracking_uri
    from alchemist.data.split_files import read_split
    from alchemist.provenance import source_tags
    from alchemist.track.backend import connect
    from alchemist.track.selection import sync_selection
    from alchemist.track.winner_pyfunc import raw_example
    from alchemist.track.trial_runs import SyncReport
    from alchemist.train.evaluate import WinnerModel

    winner_file, selection = load_winner(args.selection)
    dirs = winner_trial_dirs(winner_file, selection)
    data = layout(args).data
    prep = json.loads((data / "prep.json").read_text())
    X, _, _ = read_split(data, "val", prep, prep["features"])
    example = np.array(X[:5], dtype="float32")
    model = WinnerModel(dirs, regression=prep["task"] == "regression").eval()
    with torch.no_grad():
        output = model(torch.from_numpy(example)).numpy()
    uri = tracking_uri(args)
    name = args.model_name or f"{args.experiment}-winner"
    raw = raw_example(prep, data)

    def sync():
        client, exp_id = connect(uri, args.experiment)
        run_id = sync_selection(client, exp_id, uri, winner_file, dirs, model, example, output, name,
                                source_tags(args.results), raw, data / "prep.json")
        return SyncReport(stage=winner_file.parent.name, experiment_id=exp_id, parent_run_id=run_id)
    return guarded(sync, args, uri)
