"""Coarse → fine narrowing (PB-29): log space for log parameters, choices cut to the top-k."""
from __future__ import annotations

import math

import pytest

from alchemist.search.narrow import MARGIN, narrow_space, narrowing_report
from alchemist.search.space import parse_space

SPACE = parse_space({
    "lr": {"log_uniform": [1e-4, 1e-1]},
    "dropout": {"uniform": [0.0, 0.5]},
    "batch_size": {"int": [16, 256], "log": True},
    "epochs": {"int": [1, 100]},
    "hidden": {"choice": [[64], [128], [128, 64]]},
    "grad_clip": {"grid": [1, 5, 10, 15, 20]},
    "activation": {"grid": ["relu", "tanh", "gelu"]},
    "optimizer": {"choice": ["adam", "sgd"]},
    "momentum": {"uniform": [0.5, 0.99], "when": {"optimizer": "sgd"}},
    "patience": 10,
})


def _top(**columns):
    n = len(next(iter(columns.values())))
    return [{k: v[i] for k, v in columns.items()} for i in range(n)]


def test_log_parameters_narrow_in_log_space():
    fine = narrow_space(SPACE, _top(lr=[1e-3, 1e-2, 3e-3]))["lr"]
    margin = MARGIN * math.log(1e-1 / 1e-4)
    assert fine.kind == "log_uniform"
    assert math.log(fine.low) == pytest.approx(math.log(1e-3) - margin)
    assert math.log(fine.high) == pytest.approx(math.log(1e-2) + margin)
    assert fine.low == pytest.approx(1e-3 / 10 ** 0.3)          # a factor 2 below, not 1e-3 - 0.01


def test_linear_parameters_narrow_linearly_and_clip_to_the_wide_range():
    narrowed = narrow_space(SPACE, _top(dropout=[0.2, 0.3], lr=[1e-4, 2e-4]))
    assert (narrowed["dropout"].low, narrowed["dropout"].high) == pytest.approx((0.15, 0.35))
    assert narrowed["lr"].low == 1e-4                              # clipped at the wide bound


def test_integers_round_outward_and_collapse_to_fixed():
    narrowed = narrow_space(SPACE, _top(batch_size=[64, 128], epochs=[50, 50]))
    bs = narrowed["batch_size"]
    assert (bs.kind, bs.log) == ("int", True) and isinstance(bs.low, int)
    assert bs.low == round(64 * (256 / 16) ** -MARGIN) and bs.high == round(128 * 16 ** MARGIN)
    assert (narrowed["epochs"].low, narrowed["epochs"].high) == (40, 60)
    one = narrow_space(parse_space({"epochs": {"int": [1, 3]}}), _top(epochs=[2]))["epochs"]
    assert (one.kind, one.values) == ("fixed", (2,))               # 2 ± 0.2 rounds to [2, 2]


def test_choices_keep_the_seen_values_and_numeric_grids_their_span():
    narrowed = narrow_space(SPACE, _top(hidden=[[128, 64], [64], [128, 64]], grad_clip=[5, 15, 5],
                                        activation=["tanh", "relu", "tanh"]))
    assert narrowed["hidden"].values == ([128, 64], [64])         # canonical (JSON) order
    assert narrowed["grad_clip"].values == (5, 10, 15)             # the run between, 10 included
    assert narrowed["activation"].values == ("relu", "tanh")


def test_conditional_parameters_narrow_on_the_trials_where_they_applied():
    top = _top(optimizer=["sgd", "adam", "sgd"], momentum=[0.9, 0.0, 0.8])   # adam's 0.0 is a default
    narrowed = narrow_space(SPACE, top)
    m = narrowed["momentum"]
    assert (m.low, m.high) == pytest.approx((0.8 - 0.049, 0.9 + 0.049))
    assert narrowed["optimizer"].values == ("adam", "sgd")
    untouched = narrow_space(SPACE, _top(optimizer=["adam"], momentum=[0.0]))
    assert untouched["momentum"] == SPACE["momentum"]


def test_fixed_and_unseen_parameters_stay_and_the_report_names_changes():
    narrowed = narrow_space(SPACE, _top(lr=[1e-3]))
    assert narrowed["patience"] == SPACE["patience"] and narrowed["dropout"] == SPACE["dropout"]
    report = narrowing_report(SPACE, narrowed)
    assert len(report) == 1 and report[0].startswith("lr: log_uniform [0.0001, 0.1]  ->  log_uniform [")
