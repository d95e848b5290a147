"""`alchemist prep`: hold out test, split train/val, normalise with train stats, subsample."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from alchemist.results_layout import add_results_argument, layout

HELP = ("Prepare the data (PB-1..PB-4): test hold-out, stratified train/val split, train-only "
        "normalisation, coarse subsample; writes <out>/{train,val,test,train_coarse}.parquet "
        "(tables) or .npz (array files and image folders, memory-mapped) "
        "and <out>/prep.json. Nothing is written unless every check passes.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `alchemist prep`: the config file or the data: section as JSON, the output folder."""
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", type=Path, help="pipeline config file (YAML/JSON); its data: section is used")
    src.add_argument("--data-json", help="the data: section itself, as JSON")
    add_results_argument(parser)
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <results>/data)")


def run(args: argparse.Namespace) -> int:
    """Prepare and write the splits and prep.json; prints hygiene warnings and split sizes; returns 0."""
    from alchemist.config import load_config_file, validate
    from alchemist.data.prep import prepare, write

    if args.config is not None:
        data_cfg = load_config_file(args.config)["data"]
    else:
        data_cfg = validate({"data": json.loads(args.data_json)})["data"]
    out = args.out or layout(args).data
    manifest = write(prepare(data_cfg), out)
    for line in (manifest.get("hygiene") or {}).get("warnings", []):
        print(f"alchemist: warning: {line}", file=sys.stderr)
    rows = ", ".join(f"{k} {v['rows']}" for k, v in manifest["splits"].items())
    print(f"prepared {manifest['source']['name']} ({manifest['task']}): {rows} → {out}")
    return 0
