"""The declarative space and the stage list: parsing, canonical order, errors naming the key."""
from __future__ import annotations

import pytest
import yaml

from alchemist.errors import UserError
from alchemist.search.space import parse_space
from alchemist.search.stages import parse_search
from search_fixtures import config



@pytest.mark.parametrize("spec, message", [
    ({"lr": {"log_uniform": [0, 0.1]}}, "search.space.lr: log_uniform bounds must be > 0"),
    ({"width": {"int": [0, 64], "log": True}}, "search.space.width"),
    ({"lr": {"uniform": [0.1, 0.01]}}, "search.space.lr: uniform needs low < high"),
    ({"learning_rate": {"uniform": [0, 1]}}, "search.space.learning_rate: unknown training setting"),
    ({"lr": {"uniform": [0, 1], "choice": [1]}}, "search.space.lr: give exactly one of"),
    ({"lr": {"uniform": [0, 1], "step": 2}}, "search.space.lr: unknown option(s) step"),
    ({"lr": {"uniform": [0, 1], "log": True}}, "search.space.lr: `log` applies to int ranges only"),
    ({"hidden": {"choice": [[64], [64]]}}, "search.space.hidden: duplicate value [64]"),
    ({"hidden": {"choice": []}}, "search.space.hidden: choice needs a non-empty list"),
    ({"epochs": {"int": [1.5, 10]}}, "search.space.epochs: int bounds must be integers"),
    ({"lr": {"log_uniform": ["a", 1]}}, "search.space.lr: expected a number"),
    ({"momentum": {"uniform": [0, 1], "when": {"optimiser": "sgd"}}},
     "search.space.momentum.when: unknown training setting 'optimiser'"),
    ({"optimizer": {"choice": ["adam", "sgd"]},
      "momentum": {"uniform": [0, 1], "when": {"optimizer": "rmsprop"}}},
     'search.space.momentum.when.optimizer: "rmsprop" is not one of the values of search.space.optimizer'),
    ({"optimizer": {"choice": ["adam", "sgd"], "when": {"model": "cnn"}},
      "momentum": {"uniform": [0, 1], "when": {"optimizer": "sgd"}}},
     "search.space.momentum.when: 'optimizer' is itself conditional"),
    ({"lr": {"choice": [0.1, 0.01], "points": 3}}, "search.space.lr: `points` applies to ranges only"),
])
def test_errors_name_the_key(spec, message):
    with pytest.raises(UserError) as err:
        parse_space(spec)
    assert message in str(err.value)


def test_reordered_keys_and_choices_give_the_same_space():
    a = parse_space({"lr": {"log_uniform": [1e-4, 1e-1]}, "hidden": {"choice": [[64], [128], [128, 64]]},
                     "batch_size": {"grid": [64, 32, 128]}, "optimizer": {"choice": ["sgd", "adam"]}})
    b = parse_space({"optimizer": {"choice": ["adam", "sgd"]}, "batch_size": {"grid": [128, 32, 64]},
                     "hidden": {"choice": [[128, 64], [64], [128]]}, "lr": {"log_uniform": [1e-4, 1e-1]}})
    assert a == b and list(a) == list(b) == ["batch_size", "hidden", "lr", "optimizer"]
    assert a["batch_size"].values == (32, 64, 128)          # numbers by value, not as strings


def test_plain_values_are_fixed_and_numeric_strings_are_bounds():
    space = parse_space({"epochs": 20, "hidden": [128, 64], "lr": {"log_uniform": ["1e-4", "1e-1"]},
                         "nesterov": {"value": True, "when": {"optimizer": "sgd"}}})
    assert space["epochs"].kind == "fixed" and space["epochs"].values == (20,)
    assert space["hidden"].kind == "fixed" and space["hidden"].values == ([128, 64],)
    assert (space["lr"].low, space["lr"].high, space["lr"].log) == (1e-4, 1e-1, True)
    assert space["nesterov"].kind == "fixed" and space["nesterov"].when == (("optimizer", ("sgd",)),)


def test_conditions_accept_any_of_a_list():
    spec = {"uniform": [0.5, 0.99], "when": {"optimizer": ["sgd", "rmsprop"]}}
    p = parse_space({"momentum": spec})["momentum"]
    assert p.active({"optimizer": "rmsprop"}) and p.active({"optimizer": "sgd"})
    assert not p.active({"optimizer": "adam"})


def _one(**keys):
    """A single search stage named `a` with `keys`."""
    return [{"name": "a", "kind": "search", **keys}]


@pytest.mark.parametrize("stages, message", [
    (_one(trials=4, epochs=3), "search.stages.a: unknown key(s) epochs"),
    (_one(sampler="random"), "search.stages.a: `trials` is required"),
    (_one(sampler="grid", trials=4), "`trials` is not used with sampler grid"),
    (_one(sampler="tpe"), "search.stages.a.rounds: required with sampler tpe"),
    (_one(trials=4, rounds=2), "`rounds` and `round_size` apply to"),
    (_one(trials=4, top_k=2, **{"from": "b"}), "search.stages.a.from: expected an earlier stage"),
    (_one(trials=4, top_k=2), "`from` goes with `top_k`"),
    (_one(trials=4, set={"lrr": 1}), "search.stages.a.set: unknown training setting(s) lrr"),
    (_one(trials=4, data="test"), "search.stages.a.data: expected one of"),
    (_one(trials=4, tune=["beta1"]), "search.stages.a.tune: not searched in the space: beta1"),
    (_one(trials=0), "search.stages.a.trials: expected an integer >= 1"),
    (_one(trials=4, space={"lr": {"uniform": [1, 0]}}), "search.stages.a.space.lr: uniform needs low < high"),
    (_one(trials=4) + [{"name": "a", "kind": "repeat", "from": "a"}], "search.stages.a: duplicate stage name"),
    (_one(trials=4) + [{"name": "s", "kind": "select", "from": "a"}], "search.stages.s.from: expected a repeat"),
    (_one(trials=4) + [{"name": "r", "kind": "repeat", "from": "a", "set": {"seed": 1}}],
     "search.stages.r.set: a repeat stage varies `seed` itself"),
    ([{"name": "h", "kind": "halving", "trials": 9, "rungs": [5, 3]}], "search.stages.h.rungs: expected >= 2"),
    ([{"name": "h", "kind": "halving", "sampler": "tpe", "trials": 9, "rungs": [1, 3]}],
     "search.stages.h.sampler"),
    ([{"name": "h", "kind": "halving", "trials": 9, "rungs": [1, 3], "set": {"epochs": 4}}],
     "search.stages.h.set: epochs come from `rungs`"),
])
def test_stage_errors_name_the_key(stages, message):
    with pytest.raises(UserError) as err:
        parse_search(config(stages=stages))
    assert message in str(err.value)


def test_stage_rounds_for_the_job_graph():
    search = parse_search(config(stages=[
        {"name": "r", "kind": "search", "trials": 4},
        {"name": "t", "kind": "search", "sampler": "tpe", "rounds": 3},
        {"name": "h", "kind": "halving", "trials": 9, "rungs": [1, 3, 9]},
    ], train={"seed": 7}))
    assert [s.n_rounds for s in search.stages.values()] == [1, 3, 3]
    assert search.stages["t"].round_size == 16 and search.stages["r"].seed == 7   # seed from train.seed


def test_schema_accepts_the_default_plan_and_rejects_foreign_keys():
    from alchemist.config import SCHEMA, _validator

    validator = _validator(SCHEMA)
    default = yaml.safe_load((SCHEMA.parents[2] / "config" / "config.yaml").read_text())
    assert list(validator.iter_errors(default)) == []
    parse_search(default)                                  # the Python checks agree
    bad = {**default, "search": {**default["search"],
                                 "stages": [{"name": "r", "kind": "repeat", "from": "x", "trials": 3}]}}
    assert any("trials" in e.message for e in validator.iter_errors(bad))
