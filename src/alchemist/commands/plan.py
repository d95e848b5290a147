"""`alchemist plan`: write one round of one search stage's plan.json (trials + packs)."""
from __future__ import annotations

import argparse
from pathlib import Path

from alchemist.results_layout import add_results_argument, layout

HELP = ("Plan a search stage: sample its trials and group them into packs (plan.json); with "
        "search.pack_size: auto, a short probe on this machine's training device picks the pack size.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `alchemist plan`: config, stage, round, past tables, budget.json, out, the probe's."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=Path,
                        help="a config file (YAML or JSON) with `train:` and `search:` sections "
                             "(the pipeline passes .snakemake/alchemist/params/<hash>.json)")
    source.add_argument("--config-json", metavar="JSON",
                        help="the same as a JSON string")
    p.add_argument("--stage", required=True, help="the stage name (search.stages[].name)")
    p.add_argument("--previous", metavar="TABLE",
                   help="results table (parquet) of the stage named in this stage's `from:`")
    p.add_argument("--round", type=int, default=1, dest="round_", metavar="R",
                   help="round to plan, 1-based (tpe/gp rounds, halving rungs; default 1)")
    p.add_argument("--history", nargs="+", metavar="TABLE",
                   help="results tables of the earlier rounds of this stage (tpe/gp: all of them; "
                        "halving: round R-1); required when --round > 1")
    p.add_argument("--out", required=True, help="where to write plan.json (written atomically)")
    p.add_argument("--budget", type=Path, help="budget.json (`alchemist budget`): the stage's sizes under "
                                               "search.budget")
    probe = p.add_argument_group("pack_size: auto (the probe; alchemist.train.probe)")
    add_results_argument(probe)
    probe.add_argument("--data-dir", default=None, help="prepared data the probe trains on (default: <results>/data)")
    probe.add_argument("--probe-dir", help="cache of probe figures (default: <results>/probe)")
    probe.add_argument("--slots", type=int, help="training jobs that run at once (default: "
                                                 "$ALCHEMIST_SLOTS, set by the Snakefile, else 1)")
    probe.add_argument("--mem-mb", type=float, help="a training job's memory (resources.train.mem_mb)")
    probe.add_argument("--threads", type=int, help="torch CPU threads of a training job")
    probe.add_argument("--device", default="auto", help="auto (the trials' setting) | cpu | cuda[:N]")


def run(args: argparse.Namespace) -> int:
    """Write one round of the stage's plan.json (trials and packs; the pack size probed when auto); prints
    the counts; returns 0."""
    import pandas as pd

    from alchemist.analysis.tables import read_table
    from alchemist.atomic import write_json
    from alchemist.config import load_config_file
    from alchemist.search.plan import build_plan

    if args.config_json:
        import json

        from alchemist.config import validate
        config = validate(json.loads(args.config_json))
    else:
        config = load_config_file(args.config)
    previous = read_table(args.previous, "--previous table") if args.previous else None
    history = None
    if args.history:
        history = pd.concat([read_table(h, "--history table") for h in args.history],
                            ignore_index=True)

    def log(message: str) -> None:
        print(f"plan {args.stage}: {message}", flush=True)

    sizer = None
    if (config.get("search") or {}).get("pack_size", "auto") == "auto":
        import os

        from alchemist.search.pack_size import PackSizer

        data = Path(args.data_dir or layout(args).data)
        sizer = PackSizer(data, args.probe_dir or layout(args).probe, log=log,
                          slots=args.slots or int(os.environ.get("ALCHEMIST_SLOTS") or 1),
                          limit_mb=args.mem_mb, threads=args.threads, device=args.device)
    allocation = None
    if args.budget:
        import json

        allocation = json.loads(args.budget.read_text())
    plan = build_plan(config, args.stage, previous=previous, round_=args.round_,
                      history=history, log=log, pack_size=sizer, allocation=allocation)
    if sizer is not None:
        plan["packing"] = sizer.records
    write_json(args.out, plan, allow_nan=False)
    log(f"round {args.round_}: {len(plan['trials'])} trials in {len(plan['packs'])} packs -> {args.out}")
    return 0
