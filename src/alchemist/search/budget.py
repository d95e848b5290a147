"""A time budget for the whole search (`search.budget: 10m`): the stages sized to fit it.

`parse_duration` reads `90s`, `10m`, `2h`, `1h30m` (or a number of seconds). `allocate` takes the
stages (alchemist.search.stages.Stage objects: the configured ones, or BUDGET_STAGES in place of the shipped
defaults — a successive-halving coarse stage, the best configurations repeated over seeds) and
the probe's figures (alchemist.train.probe: seconds per step and per evaluation at each pack
size on the training device), and scales every stage's trials, epochs, rungs and seeds by one
factor λ in (0, 1] — the largest whose estimated time fits the budget:

  search   trials ≥ 4, epochs ≥ 2 (each × √λ);  tpe/gp rounds ≥ 2 (× √λ)
  halving  trials ≥ eta², the rungs (× √λ) stay a geometric ladder ending ≥ eta² epochs
  repeat   epochs ≥ 2 (× √λ); top_n ≥ 2 and seeds ≥ 3 (× λ^¼): a CI needs repeats

A stage's time is alchemist.packing's makespan of its trials at the pack size it will use, with
the jobs that run at once, plus a plan and a table job per round (two job start-ups). The
allocation aims at SAFETY of the budget: the figures come from a few steps, and diagnostics,
figures and MLflow run beside the search on the same cores. A budget the smallest search does not
fit is a UserError naming the smallest budget that does. Never more than the configured stages:
a generous budget leaves them as they are.
"""
from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Any, Mapping

from alchemist import packing
from alchemist.errors import UserError

SAFETY = 0.8
_UNITS = {"h": 3600.0, "m": 60.0, "min": 60.0, "s": 1.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(h|min|m|s)")


def parse_duration(value: Any, where: str = "search.budget") -> float:
    """Seconds of a duration: `90s`, `10m`, `2h`, `1h30m`, or a positive number of seconds."""
    if isinstance(value, bool):
        raise UserError(f"{where}: expected a duration such as 90s, 10m or 2h, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        parts = _DURATION.findall(text)
        if not parts or _DURATION.sub("", text).strip():
            raise UserError(f"{where}: expected a duration such as 90s, 10m or 2h, got {value!r}")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not seconds > 0 or math.isinf(seconds):
        raise UserError(f"{where}: a budget must be longer than 0 s, got {value!r}")
    return seconds


def short(seconds: float) -> str:
    """8 s, 3.5 min, 1.2 h."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _epochs(stage, base: Mapping) -> int:
    return int(stage.set.get("epochs", base.get("epochs", 30)))


def scaled(stage, lam: float, base: Mapping):
    """The stage at scale λ (λ = 1: as configured), never below the minimums above."""
    r, q = math.sqrt(lam), lam ** 0.25
    if stage.kind == "search":
        epochs = max(2, round(_epochs(stage, base) * r))
        stage = replace(stage, set={**stage.set, "epochs": epochs})
        if stage.sampler == "random":
            return replace(stage, trials=max(4, round(stage.trials * r)))
        return replace(stage, rounds=max(2, round(stage.rounds * r))) if stage.sampler in ("tpe", "gp") else stage
    if stage.kind == "halving":
        n_rungs, eta = len(stage.rungs), stage.eta
        last = max(eta ** 2, round(stage.rungs[-1] * r))
        rungs = [max(1, round(last / eta ** (n_rungs - 1 - i))) for i in range(n_rungs)]
        for i in range(1, n_rungs):
            rungs[i] = max(rungs[i], rungs[i - 1] + 1)
        return replace(stage, trials=max(eta ** 2, round(stage.trials * r)), rungs=tuple(rungs))
    if stage.kind == "repeat":
        return replace(stage, top_n=max(2, min(stage.top_n, round(stage.top_n * q))),
                       seeds=max(3, min(stage.seeds, round(stage.seeds * q))),
                       set={**stage.set, "epochs": max(2, round(_epochs(stage, base) * r))})
    return stage


def stage_seconds(stage, figures: dict, rows: int, batch: int, slots: int, base: Mapping) -> tuple[float, str]:
    """(estimated seconds, a description) of a (scaled) training stage."""
    batches = max(1, math.ceil(rows / max(batch, 1)))
    round_overhead = 2 * float(figures.get("startup_s", 0.0))

    def run(n: int, epochs: int) -> float:
        return packing.choose(figures, n, epochs, batches, slots).makespan_s or 0.0

    if stage.kind == "halving":
        total, n, done = 0.0, stage.trials, 0
        for rung in stage.rungs:
            total += run(n, rung - done) + round_overhead
            n, done = max(1, n // stage.eta), rung
        return total, (f"halving: {stage.trials} trials, epochs {'→'.join(map(str, stage.rungs))} "
                       f"(the best 1/{stage.eta} go on)")
    epochs = _epochs(stage, base)
    if stage.kind == "repeat":
        n = stage.top_n * stage.seeds
        return run(n, epochs) + round_overhead, f"top {stage.top_n} × {stage.seeds} seeds, {epochs} epochs"
    if stage.sampler in ("tpe", "gp"):
        return (stage.rounds * (run(stage.round_size, epochs) + round_overhead),
                f"{stage.sampler}: {stage.rounds} rounds of {stage.round_size} trials, {epochs} epochs")
    n = stage.trials or 1
    return run(n, epochs) + round_overhead, f"{n} trials, {epochs} epochs"


def allocate(budget_s: float, stages: Mapping, figures: dict, rows: Mapping[str, int],
             batch: int, slots: int, base: Mapping) -> dict:
    """{"budget_s", "scale", "estimate_s", "stages": {name: {sizes…, "estimate_s", "what"}}}."""
    training = {n: s for n, s in stages.items() if s.kind in ("search", "halving", "repeat")}

    def total(lam: float) -> tuple[float, dict]:
        out = {}
        for name, stage in training.items():
            st = scaled(stage, lam, base)
            seconds, what = stage_seconds(st, figures, rows.get(st.data, rows.get("train", 1)), batch, slots, base)
            out[name] = (st, seconds, what)
        return sum(v[1] for v in out.values()), out

    target = budget_s * SAFETY
    lo_total, lo = total(1e-9)
    if lo_total > budget_s:
        raise UserError(f"search.budget {short(budget_s)} is too small for even the smallest search here "
                        f"({', '.join(f'{n}: {v[2]}' for n, v in lo.items())} needs about "
                        f"{short(lo_total)}): give at least {math.ceil(lo_total / SAFETY / 60)}m")
    lam, (best_total, best) = 1.0, total(1.0)
    if best_total > target:
        low, high = 1e-9, 1.0
        for _ in range(40):
            mid = math.sqrt(low * high)
            if total(mid)[0] <= target:
                low = mid
            else:
                high = mid
        lam = low
        best_total, best = total(lam)
    return {"budget_s": budget_s, "scale": lam, "estimate_s": best_total, "slots": slots,
            "stages": {n: {"trials": st.trials, "rounds": st.rounds, "rungs": list(st.rungs),
                           "top_n": st.top_n, "seeds": st.seeds, "epochs": st.set.get("epochs"),
                           "estimate_s": seconds, "what": what}
                       for n, (st, seconds, what) in best.items()}}


def apply(stage, allocation: Mapping | None):
    """The stage with its budgeted sizes (unchanged without an allocation for it)."""
    sizes = (allocation or {}).get("stages", {}).get(stage.name)
    if not sizes:
        return stage
    out = replace(stage, trials=sizes["trials"], rounds=sizes["rounds"], rungs=tuple(sizes["rungs"]),
                  top_n=sizes["top_n"], seeds=sizes["seeds"])
    if sizes.get("epochs") is not None and stage.kind != "halving":
        out = replace(out, set={**stage.set, "epochs": sizes["epochs"]})
    return out


def describe(allocation: Mapping, label: str) -> list[str]:
    """The lines printed before training: one per stage, then the total."""
    lines = [f"budget {short(allocation['budget_s'])}, {allocation['slots']} training job(s) at once; "
             f"{label}:"]
    for name, s in allocation["stages"].items():
        lines.append(f"  {name:<10} {s['what']:<52} ~{short(s['estimate_s'])}")
    lines.append(f"  estimated {short(allocation['estimate_s'])} of {short(allocation['budget_s'])}"
                 + (f" (stages scaled by {allocation['scale']:.2f})" if allocation["scale"] < 1 else
                    " (the configured stages fit)"))
    return lines
