"""`alchemist budget`: size the search stages to `search.budget` (alchemist.search.budget) from
the pack-size probe's figures on this machine's training device; write budget.json, print the
plan (stages, trials, epochs, estimated minutes)."""
from __future__ import annotations

import argparse
from pathlib import Path

from alchemist.results_layout import add_results_argument, layout

HELP = ("Size the search to search.budget: probe the cost of a trial on the training device, scale "
        "every stage's trials, epochs, rungs and seeds to fit, write budget.json and print the plan.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `alchemist budget`: config, probe data/cache, slots, memory, threads, device, out."""
    p.add_argument("--config", type=Path, required=True, help="a config file (YAML or JSON) with "
                   "`train:` and `search:` (the pipeline passes .snakemake/alchemist/params/<hash>.json)")
    add_results_argument(p)
    p.add_argument("--data-dir", default=None, help="prepared data the probe trains on (default: <results>/data)")
    p.add_argument("--probe-dir", help="cache of probe figures (default: <results>/probe)")
    p.add_argument("--slots", type=int, help="training jobs that run at once (default: $ALCHEMIST_SLOTS, else 1)")
    p.add_argument("--mem-mb", type=float, help="a training job's memory (resources.train.mem_mb)")
    p.add_argument("--threads", type=int, help="torch CPU threads of a training job")
    p.add_argument("--device", default="auto", help="auto (the trials' setting) | cpu | cuda[:N]")
    p.add_argument("--out", required=True, help="where to write budget.json")


def run(args: argparse.Namespace) -> int:
    """Size every search stage to search.budget from the probe's figures; writes budget.json, prints the
    plan; returns 0. A UserError when search.budget is not set."""
    import json
    import os

    from alchemist.atomic import write_json
    from alchemist.config import load_config_file
    from alchemist.errors import UserError
    from alchemist.search.budget import allocate, describe
    from alchemist.search.pack_size import PackSizer
    from alchemist.search.stages import parse_search
    from alchemist.trial import make_trial

    config = load_config_file(args.config)
    search = parse_search(config)
    if search.budget_s is None:
        raise UserError("search.budget is not set")
    base = config.get("train") or {}
    training = [s for s in search.stages.values() if s.kind in ("search", "halving", "repeat")]
    first = training[0]
    trial = make_trial(base, {**first.set, "seed": first.seed}, stage=first.name, data=first.data)
    data = Path(args.data_dir or layout(args).data)
    slots = args.slots or int(os.environ.get("ALCHEMIST_SLOTS") or 1)
    sizer = PackSizer(data, args.probe_dir or layout(args).probe, slots=slots, limit_mb=args.mem_mb,
                      threads=args.threads, device=args.device)
    figures = sizer.figures(trial, max(min(max(s.trials or 16 for s in training), 64), 16))
    splits = json.loads((data / "prep.json").read_text())["splits"]
    allocation = allocate(search.budget_s, search.stages, figures,
                          {name: int(v["rows"]) for name, v in splits.items()},
                          int(trial["batch_size"]), slots, base)
    allocation["label"] = figures.get("label")
    allocation["probe"] = figures
    write_json(args.out, allocation)
    for line in describe(allocation, figures.get("label", "")):
        print(line, flush=True)
    return 0
