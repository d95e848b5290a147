"""Samplers (PB-28): grid, random, and Optuna's TPE / Gaussian-process samplers in rounds.

Every sampler returns points: {space key: value} dicts holding the space's fixed values and the
searched parameters that are active (a conditional parameter whose `when` fails is absent, so
the trial keeps its base value). `context` holds the settings a point does not set (defaults,
the `train:` section, the stage's fixed values); conditions are evaluated against it.

* grid: the full product of the values in canonical order (ranges need `points: N`, except int).
* random: point i of a stage is drawn from its own hash-derived uniforms, one per (seed, stage,
  i, key), so it is reproducible alone: more trials append points, and adding a parameter to the
  space leaves the other parameters' draws unchanged.
* tpe / gp: one Optuna study per round, rebuilt from the told history (sorted by trial id, so the
  rows' order in the table does not matter) and asked for the round's points.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import warnings
from typing import Any, Iterable, Mapping

from alchemist.errors import UserError
from alchemist.search.space import LIST_KINDS, Param, in_range
from alchemist.trial import canonical_json

MAX_GRID = 100_000
#: Completed trials before the model is used: round 1 is random, later rounds model-based.
N_STARTUP = 2


def unit(*parts: Any) -> float:
    """A uniform number in [0, 1) derived from `parts` alone (platform- and version-stable)."""
    digest = hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()
    return int(digest[:13], 16) / 16 ** 13


def round_sig(x: float, digits: int = 6) -> float:
    """Sampled floats are kept to 6 significant digits: readable configs, identical JSON."""
    return float(f"{x:.{digits}g}")


def from_unit(p: Param, u: float) -> Any:
    """The value of `p` at quantile `u` (uniform in log space for log parameters)."""
    if p.kind == "fixed":
        return p.values[0]
    if p.kind in LIST_KINDS:
        return p.values[min(len(p.values) - 1, int(u * len(p.values)))]
    high = p.high + 1 if p.kind == "int" else p.high      # ints: floor over [low, high + 1)
    lo, hi = p.to_scale(p.low), p.to_scale(high)
    x = p.from_scale(lo + u * (hi - lo))
    if p.kind == "int":
        return max(p.low, min(p.high, int(math.floor(x))))
    return max(p.low, min(p.high, round_sig(x)))


def grid_values(p: Param, stage: str) -> tuple:
    """The values the grid sampler enumerates for `p`."""
    if p.kind == "fixed" or p.kind in LIST_KINDS:
        return p.values
    if p.points is None:
        if p.kind == "int":
            return tuple(range(p.low, p.high + 1))
        raise UserError(f"search.space.{p.key}: the grid sampler (stage {stage!r}) needs "
                        f"`points: N` for a {p.kind} range, or explicit values via grid: [...]")
    lo, hi = p.to_scale(p.low), p.to_scale(p.high)
    xs = [p.from_scale(lo + i * (hi - lo) / (p.points - 1)) for i in range(p.points)]
    if p.kind == "int":
        return tuple(sorted({max(p.low, min(p.high, round(x))) for x in xs}))
    return tuple(max(p.low, min(p.high, round_sig(x))) for x in xs)


def _split(space: Mapping[str, Param]) -> tuple[list[Param], list[Param]]:
    return [p for p in space.values() if not p.when], [p for p in space.values() if p.when]


def _product(params: list[Param], stage: str) -> Iterable[dict]:
    keys = [p.key for p in params]
    for combo in itertools.product(*(grid_values(p, stage) for p in params)):
        yield dict(zip(keys, combo))


def grid_points(space: Mapping[str, Param], context: Mapping[str, Any], stage: str) -> list[dict]:
    """Every grid point: the plain parameters' product, each extended by the product of its active
    conditional parameters; a UserError when the grid exceeds MAX_GRID points."""
    plain, conditional = _split(space)
    size = math.prod(len(grid_values(p, stage)) for p in space.values())
    if size > MAX_GRID:
        raise UserError(f"search.stages.{stage}: the grid has {size} points (> {MAX_GRID}); "
                        "use fewer values or the random sampler (PB-28)")
    points = []
    for point in _product(plain, stage):
        active = [p for p in conditional if p.active({**context, **point})]
        points.extend({**point, **extra} for extra in _product(active, stage))
    return points


def random_point(space: Mapping[str, Param], i: int, seed: int, stage: str,
                 context: Mapping[str, Any]) -> dict:
    """Random point `i` of the stage: each active parameter from its own hash-derived uniform."""
    plain, conditional = _split(space)
    point = {p.key: from_unit(p, unit(seed, stage, i, p.key)) for p in plain}
    for p in conditional:
        if p.active({**context, **point}):
            point[p.key] = from_unit(p, unit(seed, stage, i, p.key))
    return point


def random_points(space: Mapping[str, Param], n: int, seed: int, stage: str,
                  context: Mapping[str, Any]) -> list[dict]:
    """The stage's first `n` random points (`random_point` for i = 0 .. n-1)."""
    return [random_point(space, i, seed, stage, context) for i in range(n)]


# ----------------------------------------------------------------------------- Optuna rounds

def _distribution(p: Param):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    if p.kind in LIST_KINDS:          # lists (e.g. hidden: [128, 64]) travel as canonical JSON
        return CategoricalDistribution([canonical_json(v) for v in p.values])
    if p.kind == "int":
        return IntDistribution(p.low, p.high, log=p.log)
    return FloatDistribution(p.low, p.high, log=p.log)


def _to_optuna(p: Param, value: Any) -> Any:
    return canonical_json(value) if p.kind in LIST_KINDS else value


def _from_optuna(p: Param, value: Any) -> Any:
    if p.kind in LIST_KINDS:
        return json.loads(value)
    return int(value) if p.kind == "int" else max(p.low, min(p.high, round_sig(value)))


def _suggest(trial, p: Param) -> Any:
    if p.kind in LIST_KINDS:
        return trial.suggest_categorical(p.key, [canonical_json(v) for v in p.values])
    if p.kind == "int":
        return trial.suggest_int(p.key, p.low, p.high, log=p.log)
    return trial.suggest_float(p.key, p.low, p.high, log=p.log)


def make_sampler(kind: str, seed: int):
    """The seeded Optuna sampler for `kind` (`tpe` or `gp`), random for its first N_STARTUP trials; else a
    ValueError."""
    import optuna
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=N_STARTUP, multivariate=True,
                                          group=True, constant_liar=True)
    if kind == "gp":       # Optuna's GP sampler needs torch and scipy; it imports them itself
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=N_STARTUP,
                                         warn_independent_sampling=False)
    raise ValueError(f"not a model-based sampler: {kind}")


def _active_point(space: Mapping[str, Param], context: Mapping[str, Any],
                  value_of) -> dict:
    """Fixed values plus each searched parameter's value from `value_of(p)`, in key order."""
    plain, conditional = _split(space)
    point = {p.key: (value_of(p) if p.searched else p.values[0]) for p in plain}
    for p in conditional:
        if p.active({**context, **point}):
            point[p.key] = value_of(p) if p.searched else p.values[0]
    return point


def _told_study(space: Mapping[str, Param], kind: str, history, seed: int, mode: str,
                context: Mapping[str, Any]):
    """A fresh study told `history` in trial-id order; also {canonical point: value} of it."""
    import optuna
    from optuna.trial import TrialState, create_trial
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {k: _distribution(p) for k, p in space.items() if p.searched}
    study = optuna.create_study(sampler=make_sampler(kind, seed),
                                direction="maximize" if mode == "max" else "minimize")
    known: dict[str, float | None] = {}
    for _, settings, value in sorted(history, key=lambda h: h[0]):
        point = _active_point(space, context, lambda p: settings.get(p.key))
        if not all(in_range(space[k], v) for k, v in point.items()):
            continue                      # a row from another space (e.g. before narrowing)
        told = {k: _to_optuna(space[k], v) for k, v in point.items() if k in dists}
        state = TrialState.COMPLETE if value is not None else TrialState.FAIL
        study.add_trial(create_trial(state=state, value=value, params=told,
                                     distributions={k: dists[k] for k in told}))
        known[canonical_json(point)] = value
    return study, known


def model_based_points(space: Mapping[str, Param], kind: str, n: int,
                       history: Iterable[tuple[str, Mapping[str, Any], float | None]],
                       seed: int, mode: str, context: Mapping[str, Any]) -> list[dict]:
    """The next round: `n` points proposed by TPE or GP after telling it `history`.

    `history` holds (trial_id, trial settings, value or None for a failure). Rows whose settings
    fall outside this space are not told. A point already tried is told its known value and the
    study asked again (at most 10·n asks), so a round never repeats a trial.
    """
    from optuna.exceptions import ExperimentalWarning
    from optuna.trial import TrialState
    points: list[dict] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)      # TPE `group`, GPSampler
        study, known = _told_study(space, kind, history, seed, mode, context)
        for _ in range(10 * n):
            if len(points) == n:
                break
            trial = study.ask()
            point = _active_point(space, context, lambda p: _from_optuna(p, _suggest(trial, p)))
            text = canonical_json(point)
            if text in known:
                if known[text] is None:
                    study.tell(trial, state=TrialState.FAIL)
                else:
                    study.tell(trial, known[text])
                continue
            known[text] = None
            points.append(point)
    return points
