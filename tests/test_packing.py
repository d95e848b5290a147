"""Pack sizes and budgets decided from probe figures (alchemist.packing, alchemist.search.budget):
fed fixed figures, the decisions are deterministic; durations parse or are refused in one line."""
from __future__ import annotations

import pytest
import yaml

from alchemist import packing
from alchemist.errors import UserError
from alchemist.search import budget
from alchemist.search.stages import BUDGET_STAGES, DEFAULT_STAGES, parse_search
from conftest import REPO


def figures(step_s: dict[int, float], peak_mb: dict[int, float] | None = None, eval_s: float = 0.01,
            startup_s: float = 2.0, limit_mb: float | None = 2000) -> dict:
    """Probe figures as alchemist.train.probe writes them (eval time per trial, like steps)."""
    peak_mb = peak_mb or {k: 300 + 10 * k for k in step_s}
    return {"label": "test model", "startup_s": startup_s, "limit_mb": limit_mb, "train_rows": 1000,
            "val_rows": 200, "batch_size": 64,
            "sizes": [{"K": k, "step_s": s, "eval_s": eval_s * k, "peak_mb": peak_mb[k]}
                      for k, s in step_s.items()]}


MLP = figures({1: 0.5e-3, 2: 0.55e-3, 4: 0.6e-3, 8: 0.8e-3, 16: 1.6e-3})          # packing wins 5x
CNN = figures({1: 0.05, 2: 0.104, 4: 0.22, 8: 0.45}, peak_mb={1: 600, 2: 700, 4: 900, 8: 1300})


def test_mlp_packs_fill_the_free_slots():
    assert packing.choose(MLP, 32, 15, 18, slots=2).K == 16        # 2 packs for 2 cores
    assert packing.choose(MLP, 16, 30, 18, slots=2).K == 8
    assert packing.choose(MLP, 32, 15, 18, slots=1).K == 16
    choice = packing.choose(MLP, 32, 15, 18, slots=2)
    assert "5.0x the trial-steps per second" in choice.reason


def test_convolutions_on_a_cpu_run_as_separate_jobs():
    long = packing.choose(CNN, 8, 30, 60, slots=2)                 # minutes a trial: one per job
    assert long.K == 1 and long.reason == "packing is no faster per trial here"
    line = packing.describe(CNN, long)
    assert line.startswith("test model: K=1 0.05 s/step/trial (600 MB), K=2 0.052 (700 MB)")
    assert line.endswith("→ K=1, packing is no faster per trial here")
    short = packing.choose(CNN, 8, 1, 2, slots=2)                  # a second a trial: start-ups count
    assert short.K > 1 and "start-ups" in short.reason


def test_with_slots_to_spare_the_fastest_finish_wins_and_ties_go_to_fewer_core_seconds():
    wide = packing.choose(CNN, 8, 30, 60, slots=100)
    assert wide.K == 1 and wide.makespan_s == min(wide.estimates.values())
    flat = figures({1: 1e-3, 2: 2e-3, 4: 4e-3}, startup_s=0.0, eval_s=0.0)     # same per trial
    assert packing.choose(flat, 4, 10, 100, slots=1).K == 1       # a tie: the smaller pack
    startup = figures({1: 1e-3, 2: 2e-3, 4: 4e-3}, startup_s=0.5, eval_s=0.0)
    assert packing.choose(startup, 4, 10, 100, slots=1).K == 4    # fewer job start-ups


def test_memory_caps_the_pack_size():
    tight = figures({1: 1e-3, 2: 1e-3, 4: 1e-3, 8: 1e-3, 16: 1e-3},
                    peak_mb={1: 400, 2: 500, 4: 700, 8: 1100, 16: 1900})
    assert packing.memory_line(tight) == pytest.approx((300.0, 100.0))
    assert packing.peak_mb(tight, 32) == pytest.approx(3500.0)        # the line, past the measured
    assert packing.choose(tight, 16, 10, 18, slots=1, limit_mb=1000).K == 4     # 700 <= 0.85 x 1000
    assert packing.choose(tight, 16, 10, 18, slots=1, limit_mb=10_000).K == 16


def test_durations():
    assert [budget.parse_duration(v) for v in ("90s", "10m", "2h", "1h30m", "10 min", 45)] == \
        [90, 600, 7200, 5400, 600, 45]
    for bad in ("ten minutes", "0s", "10", "10x", "", -5, True):
        with pytest.raises(UserError, match="search.budget"):
            budget.parse_duration(bad)


def _search(budget_value, stages=None):
    return parse_search({"train": {"epochs": 30}, "search": {
        "pack_size": "auto", "budget": budget_value, "space": {"lr": {"log_uniform": [1e-4, 1e-1]}},
        "stages": stages or DEFAULT_STAGES}})


def test_a_budget_sizes_the_stages_to_fit():
    search = _search("10m")
    assert [s.kind for s in search.stages.values()] == [s["kind"] for s in BUDGET_STAGES]
    rows = {"train": 3840, "train_coarse": 1920, "val": 960}
    plan = budget.allocate(search.budget_s, search.stages, CNN, rows, 64, 2, {"epochs": 30})
    assert plan["scale"] < 1 and plan["estimate_s"] <= budget.SAFETY * 600 * 1.001
    coarse, repeat = plan["stages"]["coarse"], plan["stages"]["repeat"]
    assert coarse["trials"] >= 9 and len(coarse["rungs"]) == 3 and coarse["rungs"] == sorted(set(coarse["rungs"]))
    assert repeat["seeds"] >= 3 and repeat["top_n"] >= 2
    stage = budget.apply(search.stages["coarse"], plan)
    assert stage.trials == coarse["trials"] and list(stage.rungs) == coarse["rungs"]
    lines = budget.describe(plan, "rescnn")
    assert lines[0].startswith("budget 10.0 min, 2 training job(s) at once") and "estimated" in lines[-1]
    roomy = budget.allocate(7200, _search("2h", DEFAULT_STAGES[:1] + [
        {"name": "select", "kind": "select", "from": "coarse"}][:0]).stages, MLP, rows, 64, 2, {"epochs": 30})
    assert roomy["scale"] == 1.0                                       # never above the configured


def test_a_budget_too_small_for_one_trial_says_how_much_is_needed():
    search = _search("5s")
    with pytest.raises(UserError, match=r"too small for even the smallest search.*give at least \d+m"):
        budget.allocate(search.budget_s, search.stages, CNN, {"train": 3840, "train_coarse": 1920},
                        64, 2, {"epochs": 30})


def test_configured_stages_are_scaled_not_replaced():
    own = [{"name": "only", "kind": "search", "sampler": "random", "trials": 20, "set": {"epochs": 10}},
           {"name": "again", "kind": "repeat", "from": "only", "top_n": 3, "seeds": 5}]
    search = _search("1m", own)
    assert list(search.stages) == ["only", "again"]
    plan = budget.allocate(search.budget_s, search.stages, CNN, {"train": 3840}, 64, 2, {"epochs": 30})
    assert 4 <= plan["stages"]["only"]["trials"] < 20


def test_the_shipped_stages_are_the_default_stages():
    shipped = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["search"]
    assert shipped["stages"] == DEFAULT_STAGES and shipped["pack_size"] == "auto"
