"""The `search:` section: pack size, seed, the wide space and the list of stages (PB-29..31).

Stage kinds and their keys (every stage: `name`, `kind`; `data`, `set`, `seed` where listed):

* search  — sample trials from the space. `sampler`: random (`trials`) | grid (full product) |
  tpe | gp (`rounds`, `round_size` = pack_size by default: round r+1 is proposed from rounds
  1..r). Optional: `space` (entries replacing the wide space's for this stage), `tune` (only these
  searched keys are sampled, the rest keep their `train:` values — PB-30), `from` + `top_k`
  (narrow around the top-k of that stage — PB-29), `from` + `fix_best` (fix these keys at the
  best trial's values of that stage — PB-30), `data`, `set`, `seed`.
* halving — successive halving (PB-22): `trials` sampled (`sampler` random | grid), run for
  `rungs[0]` epochs; round r keeps the best 1/`eta` of round r-1 and continues them (same trial
  ids, from their checkpoints) to `rungs[r]` epochs. Same optional keys as search.
* repeat  — the `top_n` best configurations of `from` × `seeds` seeds (PB-31); `data`, `set`, `seed`.
* select  — mean, std and `confidence` interval per configuration of `from` (a repeat stage).

`set:` fixes training settings for the stage (they leave the space) and, like `data`, enters the
trial id. Every trial of a search or halving stage gets `seed` = the stage's `seed` (default
`search.seed`, whose default is `train.seed`, else 0): common random numbers, so trials differ
by their hyperparameters only. Repeat trials get seed, seed+1, ..., seed+seeds-1.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from alchemist.errors import UserError
from alchemist.search.space import Param, parse_space
from alchemist.trial import TRIAL_DEFAULTS

#: The stages config/config.yaml ships (tests/test_search_budget.py holds them equal).
DEFAULT_STAGES = [
    {"name": "coarse", "kind": "search", "sampler": "random", "trials": 32, "data": "train_coarse",
     "set": {"epochs": 15}},
    {"name": "fine", "kind": "search", "sampler": "random", "trials": 16, "data": "train", "from": "coarse",
     "top_k": 5, "set": {"epochs": 30}},
    {"name": "repeat", "kind": "repeat", "from": "fine", "top_n": 3, "seeds": 5, "data": "train",
     "set": {"epochs": 40}},
    {"name": "select", "kind": "select", "from": "repeat"},
]
#: What the default stages become under `search.budget` (sized to it: alchemist.search.budget):
#: successive halving finds good settings for a fraction of the epochs (PB-22), then the best
#: configurations are repeated over seeds for the CI (PB-31).
BUDGET_STAGES = [
    {"name": "coarse", "kind": "halving", "sampler": "random", "trials": 27, "eta": 3, "rungs": [3, 9, 27],
     "data": "train_coarse"},
    {"name": "repeat", "kind": "repeat", "from": "coarse", "top_n": 3, "seeds": 3, "data": "train",
     "set": {"epochs": 27}},
    {"name": "select", "kind": "select", "from": "repeat"},
]


def stage_specs(search: Mapping) -> list:
    """The stage specs in effect: BUDGET_STAGES when a budget is set and the stages are the
    shipped defaults, else the configured ones."""
    specs = search.get("stages")
    return BUDGET_STAGES if search.get("budget") is not None and specs == DEFAULT_STAGES else specs


KINDS = ("search", "halving", "repeat", "select")
SAMPLERS = {"random": False, "grid": False, "tpe": True, "gp": True}   # name → proposes from history
MODEL_BASED = tuple(name for name, told in SAMPLERS.items() if told)     # rounds and round_size apply
DATA_SPLITS = ("train", "train_coarse")
_COMMON = {"name", "kind", "data", "set", "seed"}
_SAMPLING = _COMMON | {"sampler", "trials", "from", "top_k", "fix_best", "tune", "space"}
ALLOWED_KEYS = {
    "search": _SAMPLING | {"rounds", "round_size"},
    "halving": _SAMPLING | {"eta", "rungs"},
    "repeat": _COMMON | {"from", "top_n", "seeds"},
    "select": {"name", "kind", "from", "confidence"},
}


@dataclass(frozen=True)
class Stage:
    name: str
    kind: str
    seed: int
    data: str = "train"
    set: dict = field(default_factory=dict)
    sampler: str = "random"
    trials: int | None = None
    rounds: int = 1
    round_size: int = 16
    source: str | None = None            # `from`
    top_k: int | None = None
    fix_best: tuple[str, ...] = ()
    tune: tuple[str, ...] | None = None
    space: dict = field(default_factory=dict)
    top_n: int = 3
    seeds: int = 5
    eta: int = 3
    rungs: tuple[int, ...] = ()
    confidence: float = 0.95

    @property
    def n_rounds(self) -> int:
        """Plans this stage needs (one Snakemake checkpoint each)."""
        if self.kind == "halving":
            return len(self.rungs)
        return self.rounds if self.sampler in MODEL_BASED and self.kind == "search" else 1


@dataclass(frozen=True)
class SearchConfig:
    pack_size: int | str          # a number, or "auto" (measured: alchemist.packing)
    seed: int
    space_raw: dict
    stages: dict[str, Stage]
    budget_s: float | None = None  # search.budget in seconds (alchemist.search.budget)

    @property
    def fixed_pack_size(self) -> int | None:
        """The pack size when given as a number; None for `auto` (measured)."""
        return self.pack_size if isinstance(self.pack_size, int) else None

    def stage(self, name: str) -> Stage:
        """The stage named `name`; a UserError listing the stage names when there is none."""
        if name not in self.stages:
            raise UserError(f"search.stages: no stage named {name!r} (have {', '.join(self.stages)})")
        return self.stages[name]

    def space(self, stage: Stage) -> dict[str, Param]:
        """The stage's space before narrowing: overlay, `tune` restriction, fixed keys removed."""
        where = f"search.stages.{stage.name}"
        space = parse_space(self.space_raw, overlay=stage.space, overlay_where=f"{where}.space")
        fixed = set(stage.set) | set(stage.fix_best)
        if stage.tune is not None:
            unknown = [k for k in stage.tune if k not in space or not space[k].searched]
            if unknown:
                raise UserError(f"{where}.tune: not searched in the space: {', '.join(unknown)}")
        return {k: p for k, p in space.items() if k not in fixed
                and (stage.tune is None or not p.searched or k in stage.tune)}


def _int(spec: Mapping, key: str, where: str, default: Any = None, minimum: int = 1) -> Any:
    value = spec.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{where}.{key}: expected an integer >= {minimum}, got {value!r}")
    return value


def _keys(spec: Mapping, key: str, where: str) -> tuple[str, ...] | None:
    if key not in spec:
        return None
    value = spec[key]
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value) or not value:
        raise UserError(f"{where}.{key}: expected a non-empty list of training settings")
    unknown = [k for k in value if k not in TRIAL_DEFAULTS]
    if unknown:
        raise UserError(f"{where}.{key}: unknown training setting(s) {', '.join(unknown)}")
    return tuple(sorted(set(value)))


def _require(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise UserError(f"{where}: {message}")


def parse_stage(spec: Any, i: int, earlier: Mapping[str, Stage], pack_size: int, seed: int) -> Stage:
    """The validated Stage of `spec` (the i-th; `earlier` precede it), `pack_size` and `seed` as defaults;
    a UserError for any unknown or invalid key."""
    _require(isinstance(spec, Mapping), f"search.stages[{i}]", "expected a mapping")
    name = spec.get("name")
    _require(isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_-]+", name or "") is not None,
             f"search.stages[{i}].name", f"expected letters, digits, _ or -, got {name!r}")
    where = f"search.stages.{name}"
    _require(name not in earlier, where, "duplicate stage name")
    kind = spec.get("kind")
    _require(kind in KINDS, f"{where}.kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
    extra = set(spec) - ALLOWED_KEYS[kind]
    _require(not extra, where, f"unknown key(s) {', '.join(sorted(extra))} for kind {kind} "
             f"(allowed: {', '.join(sorted(ALLOWED_KEYS[kind]))})")
    data = spec.get("data", "train")
    _require(data in DATA_SPLITS, f"{where}.data", f"expected one of {', '.join(DATA_SPLITS)}, got {data!r}")
    fixed = spec.get("set", {}) or {}
    _require(isinstance(fixed, Mapping), f"{where}.set", "expected a mapping of training settings")
    unknown = sorted(set(fixed) - set(TRIAL_DEFAULTS))
    _require(not unknown, f"{where}.set", f"unknown training setting(s) {', '.join(unknown)}")
    overlay = spec.get("space") or {}
    _require(isinstance(overlay, Mapping), f"{where}.space", "expected a mapping")
    source = spec.get("from")
    if source is not None:
        _require(source in earlier and earlier[source].kind != "select", f"{where}.from",
                 f"expected an earlier stage that trains (have {', '.join(earlier) or 'none'})")
    stage = Stage(
        name=name, kind=kind, seed=_int(spec, "seed", where, seed, 0), data=data, set=dict(fixed),
        sampler=spec.get("sampler", "random"), trials=_int(spec, "trials", where),
        rounds=_int(spec, "rounds", where, 1), round_size=_int(spec, "round_size", where, pack_size),
        source=source, top_k=_int(spec, "top_k", where), fix_best=_keys(spec, "fix_best", where) or (),
        tune=_keys(spec, "tune", where), space=dict(overlay),
        top_n=_int(spec, "top_n", where, 3), seeds=_int(spec, "seeds", where, 5, 2),
        eta=_int(spec, "eta", where, 3, 2), rungs=tuple(spec.get("rungs") or ()),
        confidence=spec.get("confidence", 0.95))
    _check_kind(stage, spec, earlier, where)
    return stage


def _check_kind(stage: Stage, spec: Mapping, earlier: Mapping[str, Stage], where: str) -> None:
    if stage.kind in ("search", "halving"):
        allowed = tuple(n for n, told in SAMPLERS.items() if stage.kind == "search" or not told)
        _require(stage.sampler in allowed, f"{where}.sampler",
                 f"expected one of {', '.join(allowed)}, got {stage.sampler!r}")
        wants_trials = stage.sampler == "random"
        _require((stage.trials is not None) == wants_trials, where,
                 f"`trials` is {'required' if wants_trials else 'not used'} with sampler {stage.sampler}")
        model = stage.sampler in MODEL_BASED
        _require(model or not {"rounds", "round_size"} & set(spec), where,
                 "`rounds` and `round_size` apply to the tpe and gp samplers only")
        _require(not model or "rounds" in spec, f"{where}.rounds", f"required with sampler {stage.sampler}")
        uses_source = stage.top_k is not None or bool(stage.fix_best)
        _require(uses_source == (stage.source is not None), where,
                 "`from` goes with `top_k` (narrow around its best trials) and/or `fix_best`")
    if stage.kind == "halving":
        rungs = stage.rungs
        _require(len(rungs) >= 2 and all(isinstance(r, int) and not isinstance(r, bool) and r > 0
                                         for r in rungs) and list(rungs) == sorted(set(rungs)),
                 f"{where}.rungs", f"expected >= 2 increasing epoch counts, got {list(rungs)!r}")
        _require("epochs" not in stage.set, f"{where}.set", "epochs come from `rungs` in a halving stage")
    if stage.kind in ("repeat", "select"):
        _require(stage.source is not None, f"{where}.from", "required")
    if stage.kind == "repeat":
        _require("seed" not in stage.set, f"{where}.set", "a repeat stage varies `seed` itself")
    if stage.kind == "select":
        _require(earlier[stage.source].kind == "repeat", f"{where}.from", "expected a repeat stage")
        c = stage.confidence
        _require(isinstance(c, float) and 0 < c < 1, f"{where}.confidence",
                 f"expected a number between 0 and 1, got {c!r}")


def parse_search(config: Mapping[str, Any]) -> SearchConfig:
    """The validated `search:` section of a (resolved) config."""
    search = config.get("search")
    if search is None or (isinstance(search, Mapping) and not search.get("space")
                          and not search.get("stages")):   # no search: the pipeline only preps
        return SearchConfig(16, 0, {}, {})
    _require(isinstance(search, Mapping), "search", "not a mapping")
    pack_size = search.get("pack_size", "auto")
    if pack_size != "auto":
        pack_size = _int(search, "pack_size", "search", 16)
    train = config.get("train") or {}
    seed = _int(search, "seed", "search", train.get("seed", 0) if isinstance(train, Mapping) else 0, 0)
    space_raw = search.get("space")
    _require(isinstance(space_raw, Mapping) and bool(space_raw), "search.space",
             "expected a non-empty mapping of training setting: distribution")
    ignore = set(search.get("ignore") or [])
    kept = {k: v for k, v in space_raw.items() if k not in ignore}
    space_raw = kept or space_raw           # (all ignored: the search would be empty; keep it)
    parse_space(space_raw)
    budget_s = None
    if search.get("budget") is not None:
        from alchemist.search.budget import parse_duration

        budget_s = parse_duration(search["budget"])
    stages_raw = stage_specs(search)
    _require(isinstance(stages_raw, list) and bool(stages_raw), "search.stages",
             "expected a non-empty list of stages")
    stages: dict[str, Stage] = {}
    for i, spec in enumerate(stages_raw):
        stage = parse_stage(spec, i, stages, pack_size if pack_size != "auto" else 16, seed)
        stages[stage.name] = stage
    config_out = SearchConfig(pack_size, seed, dict(space_raw), stages, budget_s)
    for stage in stages.values():
        if stage.kind in ("search", "halving"):
            config_out.space(stage)          # validates the space, overlay and `tune` now
    return config_out
