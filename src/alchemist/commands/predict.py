"""`alchemist predict`: the winner's models on new real-world data (PB-33)."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("Predict a new CSV/Parquet table with the selected configuration (every seed, averaged), "
        "encoded with the stored prep statistics; reports the metric if the target column is present.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, help="the new table (.csv or .parquet)")
    p.add_argument("--out", type=Path, required=True, help="predictions (.csv or .parquet)")
    p.add_argument("--data-dir", type=Path, default=Path("results/data"), help="prep output (prep.json)")
    p.add_argument("--winner", type=Path, default=Path("results/select/winner.json"))
    p.add_argument("--trials-dir", type=Path, default=Path("results/repeat/trials"))


def run(args: argparse.Namespace) -> int:
    from alchemist.predict import predict_table, winner_trial_dirs

    table = predict_table(args.data, args.data_dir, winner_trial_dirs(args.winner, args.trials_dir))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.suffix == ".parquet":
        table.to_parquet(args.out)
    else:
        table.to_csv(args.out, index=False)
    scores = ", ".join(f"{k} {v:.4f}" for k, v in table.attrs.items())
    print(f"predicted {len(table)} rows → {args.out}" + (f" ({scores})" if scores else ""))
    return 0
