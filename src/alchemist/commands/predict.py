"""`alchemist predict`: the winner's models on new real-world data (PB-33)."""
from __future__ import annotations

import argparse
from pathlib import Path

from alchemist.results_layout import add_winner_arguments, layout

HELP = ("Predict a new CSV/Parquet table of raw rows (for a model prepared from an image folder: a folder "
        "or file of images of any size; from arrays: a .npy / .npz of X and optionally y) with the "
        "selected configuration (every seed, averaged), "
        "encoded with the stored prep statistics — what the registered MLflow model does. Writes the "
        "ID columns prep dropped, `prediction` in the target's own type and `p_<class>`; reports the "
        "selection metric and accuracy (or rmse and r2) if the target is present. Test rows are refused.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `alchemist predict`: new data, output file, prep folder, winner, trial folders."""
    p.add_argument("--data", type=Path, required=True,
                   help="the new table (.csv or .parquet), images (a folder, subfolders named by class to score "
                        "them, or one file), or arrays (.npy / .npz)")
    p.add_argument("--out", type=Path, required=True, help="predictions (.csv or .parquet)")
    add_winner_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Write the winner's predictions for --data (Parquet or CSV by suffix); prints the row count and any
    scores; returns 0."""
    from alchemist.analysis.select import load_winner, winner_trial_dirs
    from alchemist.atomic import replacing
    from alchemist.train.predict import predict_table

    under = layout(args)
    winner_file, selection = load_winner(args.winner or under.winner())
    dirs = winner_trial_dirs(winner_file, selection, args.trials_dir)
    table = predict_table(args.data, args.data_dir or under.data, dirs)
    with replacing(args.out) as tmp:
        if args.out.suffix == ".parquet":
            table.to_parquet(tmp)
        else:
            table.to_csv(tmp, index=False)
    scores = ", ".join(f"{k} {v:.4f}" for k, v in table.attrs.items())
    print(f"predicted {len(table)} rows → {args.out}" + (f" ({scores})" if scores else ""))
    return 0
