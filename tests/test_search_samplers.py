"""Grid, random and Optuna (TPE, GP) samplers."""
from __future__ import annotations

import math
import random
import statistics

import pytest

from alchemist.errors import UserError
from alchemist.search.samplers import grid_points, model_based_points, random_points
from alchemist.search.space import parse_space
from alchemist.trial import TRIAL_DEFAULTS, canonical_json

CONTEXT = dict(TRIAL_DEFAULTS)


def test_grid_enumerates_the_full_product_with_conditions():
    space = parse_space({"lr": {"grid": [0.1, 0.01, 0.001]}, "hidden": {"choice": [[64], [128]]},
                         "batch_size": {"int": [1, 3]}, "epochs": 5,
                         "optimizer": {"choice": ["adam", "sgd"]},
                         "momentum": {"grid": [0.8, 0.9], "when": {"optimizer": "sgd"}}})
    points = grid_points(space, CONTEXT, "g")
    assert len(points) == 3 * 2 * 3 * (1 + 2)                      # adam: 1, sgd: 2 momenta
    assert len({canonical_json(p) for p in points}) == len(points)
    assert all(p["epochs"] == 5 for p in points)
    assert all(("momentum" in p) == (p["optimizer"] == "sgd") for p in points)


def test_grid_of_a_log_range_needs_points():
    space = parse_space({"lr": {"log_uniform": [1e-4, 1e-1], "points": 4}})
    assert [p["lr"] for p in grid_points(space, CONTEXT, "g")] == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])
    with pytest.raises(UserError, match=r"search.space.lr: the grid sampler \(stage 'g'\) needs `points: N`"):
        grid_points(parse_space({"lr": {"log_uniform": [1e-4, 1e-1]}}), CONTEXT, "g")


def test_random_trial_i_is_reproducible_alone_and_in_bounds():
    space = parse_space({"lr": {"log_uniform": [1e-4, 1e-1]}, "batch_size": {"int": [16, 256], "log": True},
                         "dropout": {"uniform": [0.0, 0.5]}, "optimizer": {"choice": ["adam", "sgd"]},
                         "momentum": {"uniform": [0.5, 0.99], "when": {"optimizer": "sgd"}}})
    many = random_points(space, 400, seed=0, stage="coarse", context=CONTEXT)
    assert random_points(space, 5, 0, "coarse", CONTEXT) == many[:5]
    assert random_points(space, 5, 1, "coarse", CONTEXT) != many[:5]
    for p in many:
        assert 1e-4 <= p["lr"] <= 1e-1 and 16 <= p["batch_size"] <= 256 and 0 <= p["dropout"] <= 0.5
        assert isinstance(p["batch_size"], int)
        assert ("momentum" in p) == (p["optimizer"] == "sgd")       # absent when the condition fails
    below = sum(p["lr"] < math.sqrt(1e-4 * 1e-1) for p in many) / len(many)
    assert 0.4 < below < 0.6                                         # uniform in log space (PB-27)


def test_adding_a_parameter_keeps_the_other_draws():
    small = parse_space({"lr": {"log_uniform": [1e-4, 1e-1]}})
    large = parse_space({"lr": {"log_uniform": [1e-4, 1e-1]}, "dropout": {"uniform": [0.0, 0.5]}})
    assert ([p["lr"] for p in random_points(small, 10, 0, "s", CONTEXT)]
            == [p["lr"] for p in random_points(large, 10, 0, "s", CONTEXT)])


LR_SPACE = {"lr": {"log_uniform": [1e-5, 1.0]}, "dropout": {"uniform": [0.0, 0.5]}}


def _history(points, objective, offset=0):
    return [(f"t{offset + i:03d}", p, objective(p)) for i, p in enumerate(points)]


def _peak(center):
    return lambda p: -(math.log10(p["lr"]) - math.log10(center)) ** 2 - (p["dropout"] - 0.1) ** 2


def _distance(points, center):
    return statistics.median(abs(math.log10(p["lr"]) - math.log10(center)) for p in points)


@pytest.mark.parametrize("kind", ["tpe", "gp"])
def test_model_rounds_learn_from_the_told_results(kind):
    space = parse_space(LR_SPACE)
    n = 12 if kind == "tpe" else 4
    first = model_based_points(space, kind, n, [], seed=3, mode="max", context=CONTEXT)
    assert len(first) == n
    history_a = _history(first, _peak(1e-4))
    history_b = _history(first, _peak(1e-1))
    second_a = model_based_points(space, kind, n, history_a, seed=4, mode="max", context=CONTEXT)
    second_b = model_based_points(space, kind, n, history_b, seed=4, mode="max", context=CONTEXT)
    assert second_a != second_b                                    # round 2 depends on round 1's values
    assert _distance(second_a, 1e-4) < _distance(first, 1e-4)      # and moves towards each optimum
    assert _distance(second_b, 1e-1) < _distance(first, 1e-1)
    told = {canonical_json(p) for _, p, _ in history_a}
    assert not told & {canonical_json(p) for p in second_a}        # never re-proposes a told point


def test_tpe_rounds_are_deterministic_whatever_the_row_order():
    space = parse_space({**LR_SPACE, "hidden": {"choice": [[64], [128, 64]]}})
    first = model_based_points(space, "tpe", 10, [], seed=1, mode="min", context=CONTEXT)
    assert all(p["hidden"] in ([64], [128, 64]) for p in first)    # categorical lists come back as lists
    history = _history(first, lambda p: abs(math.log10(p["lr"]) + 3) + len(p["hidden"]))
    shuffled = history[:]
    random.Random(0).shuffle(shuffled)
    a = model_based_points(space, "tpe", 10, history, seed=2, mode="min", context=CONTEXT)
    assert a == model_based_points(space, "tpe", 10, shuffled, seed=2, mode="min", context=CONTEXT)
    assert sum(p["hidden"] == [64] for p in a) > sum(p["hidden"] == [64] for p in first)   # mode min


def test_model_rounds_respect_conditions_and_skip_foreign_history():
    space = parse_space({"lr": {"log_uniform": [1e-4, 1e-1]}, "optimizer": {"choice": ["adam", "sgd"]},
                         "momentum": {"uniform": [0.5, 0.99], "when": {"optimizer": "sgd"}}})
    first = model_based_points(space, "tpe", 8, [], seed=0, mode="max", context=CONTEXT)
    history = _history(first, lambda p: -abs(math.log10(p["lr"]) + 2))
    history.append(("zzz", {"lr": 5.0, "optimizer": "adam"}, 1.0))      # outside the space: not told
    history.append(("yyy", {"lr": 1e-3, "optimizer": "sgd", "momentum": 0.9}, None))   # a failure
    second = model_based_points(space, "tpe", 8, history, seed=1, mode="max", context=CONTEXT)
    assert len(second) == 8
    assert all(("momentum" in p) == (p["optimizer"] == "sgd") for p in second)
