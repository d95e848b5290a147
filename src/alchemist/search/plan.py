"""A stage's plan: its trials and their packs (`results/<stage>/plan.json`, docs/architecture.md).

A trial is `make_trial(base=train:, overrides=seed ∪ sampled point ∪ fixed values)` with the
stage's name and data split as place keys, so stage settings enter the trial id.

Packs: trials are grouped by `alchemist.trial.pack_key`, kept in generation order inside a group
(random index i, canonical grid order, Optuna ask order, rank × seed for repeat), and chunked into
packs of at most `search.pack_size`. A pack's id hashes its pack key and its sorted trial ids,
so appending trials (16 → 24 random trials) leaves every full pack's id unchanged; only a
group's last, partially filled pack changes.

Halving (PB-22): a trial's id is computed with `epochs` = the last rung and kept across rungs
(as is `schedule_epochs` = the last rung: a cosine schedule spans all rungs, PB-14);
the plan of round r sets `epochs` = rungs[r-1], so the engine resumes the same trial directory
from its checkpoint. Which trials run in round r > 1: the best max(1, n // eta) of the n rows of
`history` (the results table of round r-1) whose config reached rungs[r-2] epochs.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Mapping

import pandas as pd

from alchemist.errors import UserError
from alchemist.search import budget, samplers
from alchemist.search.narrow import narrow_space, narrowing_report
from alchemist.analysis.tables import table_mode
from alchemist.search.history import ranked, told_history, top
from alchemist.search.stages import SearchConfig, Stage, parse_search
from alchemist.trial import TRIAL_DEFAULTS, make_trial, pack_key, short_hash, trial_id

Log = Callable[[str], None]


PackSize = "int | Callable[[list[dict]], int]"


def pack_trials(trials: list[Mapping[str, Any]], pack_size) -> dict[str, list[str]]:
    """{pack_id: [trial ids]}: stable packs of <= K trials sharing a pack key, K = pack_size or,
    when it is a function, pack_size(the group's trials) (`pack_size: auto`, alchemist.packing)."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for t in trials:
        groups.setdefault(pack_key(t), []).append(t)
    packs = {}
    for key, group in groups.items():
        size = max(1, int(pack_size(group) if callable(pack_size) else pack_size))
        ids = [t["trial_id"] for t in group]
        for i in range(0, len(ids), size):
            chunk = ids[i:i + size]
            packs[short_hash({"pack_key": key, "trials": sorted(chunk)})] = chunk
    return packs


def _sampling_setup(search: SearchConfig, stage: Stage, base: Mapping[str, Any],
                    previous: pd.DataFrame | None, log: Log):
    """(space, fixed settings, context) of a search or halving stage."""
    space = search.space(stage)
    fixed: dict[str, Any] = {}
    if stage.source is not None:
        where = f"results table of stage {stage.source!r} (--previous)"
        best = top(previous, stage.top_k or 1, where)
        for k in stage.fix_best:
            if k not in best[0].settings:
                raise UserError(f"{where}: the best trial has no setting {k!r}")
            fixed[k] = best[0].settings[k]
            log(f"fixed {k} = {best[0].settings[k]!r} (best trial {best[0].trial_id} of {stage.source})")
        if stage.top_k:
            narrowed = narrow_space(space, [r.settings for r in best])
            for line in narrowing_report(space, narrowed):
                log(f"narrowed {line}")
            space = narrowed
    fixed.update(stage.set)
    return space, fixed, {**TRIAL_DEFAULTS, **base, "seed": stage.seed, **fixed}


def _points(stage: Stage, space, context, round_: int, history: pd.DataFrame | None) -> list[dict]:
    if stage.sampler == "grid":
        return samplers.grid_points(space, context, stage.name)
    if stage.sampler == "random":
        return samplers.random_points(space, stage.trials, stage.seed, stage.name, context)
    told = told_history(history) if history is not None else []
    mode = table_mode(history) if told else "max"
    seed = int(samplers.unit(stage.seed, stage.name, round_) * 2 ** 31)
    return samplers.model_based_points(space, stage.sampler, stage.round_size, told, seed, mode, context)


def _sampled_trials(search: SearchConfig, stage: Stage, base, previous, round_, history, log,
                    **pinned) -> list[dict]:
    space, fixed, context = _sampling_setup(search, stage, base, previous, log)
    fixed.update(pinned)
    return [make_trial(base, {"seed": stage.seed, **point, **fixed}, stage=stage.name, data=stage.data)
            for point in _points(stage, space, context, round_, history)]


def _repeat_trials(stage: Stage, previous: pd.DataFrame) -> list[dict]:
    best = top(previous, stage.top_n, f"results table of stage {stage.source!r} (--previous)")
    trials = []
    for r in best:
        settings = {k: v for k, v in r.settings.items() if k in TRIAL_DEFAULTS}
        for s in range(stage.seeds):
            trials.append(make_trial(settings, {**stage.set, "seed": stage.seed + s},
                                     stage=stage.name, data=stage.data))
    return trials


def _halving_trials(search: SearchConfig, stage: Stage, base, previous, round_, history, log):
    if round_ == 1:
        pinned = {"epochs": stage.rungs[-1]}   # the id's budget; a cosine spans all rungs
        if not {**base, **stage.set}.get("schedule_epochs"):
            pinned["schedule_epochs"] = stage.rungs[-1]
        trials = _sampled_trials(search, stage, base, previous, round_, None, log, **pinned)
    else:
        where = f"results table of round {round_ - 1} of stage {stage.name!r} (--history)"
        reached = stage.rungs[round_ - 2]          # rows of earlier rungs (if any) are not this rung's
        rung = history[[json.loads(p).get("epochs") == reached for p in history["params_json"]]]
        survivors = ranked(rung, where)[:max(1, len(rung) // stage.eta)]
        if not survivors:
            raise UserError(f"{where}: no completed trial ran to {reached} epochs")
        trials = []
        for r in survivors:
            t = dict(r.settings)
            if t.get("stage") != stage.name or trial_id({**t, "epochs": stage.rungs[-1]}) != r.trial_id:
                raise UserError(f"{where}: trial {r.trial_id} is not a trial of this halving stage")
            trials.append({**t, "trial_id": r.trial_id})
        log(f"rung {round_}: {len(survivors)} of {len(rung)} trials continue (eta={stage.eta})")
    return [{**t, "epochs": stage.rungs[round_ - 1]} for t in trials]


def _needs(table: pd.DataFrame | None, where: str, what: str) -> None:
    if table is None:
        raise UserError(f"{where}: needs {what}")


def stage_settings(stage: Stage) -> dict:
    """The stage's own settings as its config gives them (its MLflow run's params)."""
    from dataclasses import asdict

    keep = {"kind", "sampler", "trials", "rounds", "data", "set", "source", "top_k", "fix_best",
            "tune", "top_n", "seeds", "eta", "rungs", "seed"}     # (its space: the trials show it)
    out = {k: v for k, v in asdict(stage).items() if k in keep and v not in (None, (), {}, [])}
    if stage.kind != "halving":
        out.pop("eta", None)
    if stage.kind != "repeat":
        out.pop("top_n", None)
        out.pop("seeds", None)
    return json.loads(json.dumps(out, default=list))


def build_plan(config: Mapping[str, Any], stage_name: str, previous: pd.DataFrame | None = None,
               round_: int = 1, history: pd.DataFrame | None = None,
               log: Log = lambda message: None, pack_size=None, allocation: dict | None = None) -> dict:
    """The plan.json dict of one round of one stage (round 1 unless tpe/gp/halving). Packs hold
    `pack_size` trials (a number, or a function of a group's trials); default search.pack_size,
    16 where that is `auto` (the `plan` command measures instead: alchemist.packing). With a
    budget `allocation` (budget.json, alchemist.search.budget) the stage takes its sizes."""
    search = parse_search(config)
    stage = budget.apply(search.stage(stage_name), allocation)
    where = f"search.stages.{stage.name}"
    base = config.get("train") or {}
    if stage.kind == "select":
        raise UserError(f"{where}: a select stage has no plan; run `alchemist select`")
    if not 1 <= round_ <= stage.n_rounds:
        raise UserError(f"{where}: round {round_} is outside 1..{stage.n_rounds}")
    if stage.source is not None:
        _needs(previous, where, f"--previous (the results table of stage {stage.source!r})")
    if round_ > 1:
        _needs(history, where, f"--history (the results of rounds before round {round_})")
    if stage.kind == "repeat":
        trials = _repeat_trials(stage, previous)
    elif stage.kind == "halving":
        trials = _halving_trials(search, stage, base, previous, round_, history, log)
    else:
        trials = _sampled_trials(search, stage, base, previous, round_, history, log)
    if allocation:
        log(f"budget: {allocation['stages'][stage.name]['what']}")
    by_id: dict[str, dict] = {}
    for t in trials:
        by_id.setdefault(t["trial_id"], t)
    unique = list(by_id.values())
    if len(unique) < len(trials):
        log(f"{len(trials) - len(unique)} duplicate trial(s) dropped (a small discrete space?)")
    return {"stage": stage.name, "source": stage.source, "settings": stage_settings(stage),
            "trials": {t["trial_id"]: t for t in unique},
            "packs": pack_trials(unique, pack_size or search.fixed_pack_size or 16)}
