"""Stage plans: trial ids, stable packs, coarse → fine → repeat, halving, staged tuning, the CLI."""
from __future__ import annotations

import json
import math

import pytest
import yaml

from alchemist.cli import main
from alchemist.errors import UserError
from alchemist.search.plan import build_plan
from alchemist.atomic import dumps
from alchemist.trial import TRIAL_DEFAULTS, pack_key, trial_id
from search_fixtures import config, lr_peak, results_table

YAML_A = """
train: {model: mlp, lr: 0.001}
search:
  pack_size: 4
  space:
    lr: {log_uniform: [1.0e-4, 1.0e-1]}
    hidden: {choice: [[64], [128], [128, 64]]}
    optimizer: {choice: [adam, sgd]}
    momentum: {uniform: [0.5, 0.99], when: {optimizer: sgd}}
    batch_size: {grid: [32, 64]}
    epochs: 20
  stages:
    - {name: coarse, kind: search, sampler: random, trials: 24, data: train_coarse, set: {epochs: 15}}
    - {name: grid, kind: search, sampler: grid,
       space: {lr: {grid: [0.01, 0.001]}, momentum: {grid: [0.9, 0.8], when: {optimizer: sgd}}}}
"""
YAML_B = """
search:
  stages:
    - {set: {epochs: 15}, data: train_coarse, trials: 24, sampler: random, kind: search, name: coarse}
    - {space: {momentum: {when: {optimizer: [sgd]}, grid: [0.8, 0.9]}, lr: {grid: [0.001, 0.01]}},
       sampler: grid, kind: search, name: grid}
  space:
    epochs: 20
    batch_size: {grid: [64, 32]}
    momentum: {when: {optimizer: sgd}, uniform: [0.5, 0.99]}
    optimizer: {choice: [sgd, adam]}
    hidden: {choice: [[128, 64], [128], [64]]}
    lr: {log_uniform: [1.0e-4, 1.0e-1]}
  pack_size: 4
train: {lr: 0.001, model: mlp}
"""


def _plan(cfg, stage="coarse", **kw):
    return build_plan(cfg, stage, **kw)


@pytest.mark.parametrize("stage", ["coarse", "grid"])
def test_reordering_keys_and_choices_reruns_nothing(stage):
    a, b = (_plan(yaml.safe_load(text), stage) for text in (YAML_A, YAML_B))
    assert dumps(a) == dumps(b)
    assert len(a["trials"]) == (24 if stage == "coarse" else 2 * 3 * 2 * (1 + 2))  # adam 1, sgd 2


def test_trials_carry_their_stage_settings_and_ids():
    plan = _plan(yaml.safe_load(YAML_A))
    for tid, t in plan["trials"].items():
        assert t["trial_id"] == tid == trial_id(t)
        assert (t["stage"], t["data"], t["epochs"], t["seed"]) == ("coarse", "train_coarse", 15, 0)
        assert set(t) == set(TRIAL_DEFAULTS) | {"trial_id", "stage", "data"}
        if t["optimizer"] == "adam":
            assert t["momentum"] == TRIAL_DEFAULTS["momentum"]     # condition false: base value
        else:
            assert 0.5 <= t["momentum"] <= 0.99
    cfg = yaml.safe_load(YAML_A)
    cfg["search"]["stages"][0]["set"]["epochs"] = 16
    assert not set(_plan(cfg)["trials"]) & set(plan["trials"])     # stage settings enter the id


def test_packs_group_by_pack_key_and_hold_at_most_k():
    plan = _plan(yaml.safe_load(YAML_A))
    packed = [tid for ids in plan["packs"].values() for tid in ids]
    assert sorted(packed) == sorted(plan["trials"])
    for ids in plan["packs"].values():
        assert 1 <= len(ids) <= 4
        assert len({pack_key(plan["trials"][t]) for t in ids}) == 1


@pytest.mark.parametrize("space", [None, yaml.safe_load(YAML_A)["search"]["space"]])
def test_more_random_trials_only_add_packs(space):
    def plan(n):
        return _plan(config(space=space, pack_size=4, stages=[
            {"name": "coarse", "kind": "search", "sampler": "random", "trials": n}]))
    small, large = plan(16), plan(24)
    assert set(small["trials"]) < set(large["trials"])
    full = {pid for pid, ids in small["packs"].items() if len(ids) == 4}
    assert full <= set(large["packs"])                              # finished packs stay as they are
    changed = set(small["packs"]) - set(large["packs"])
    groups = {pack_key(t) for t in small["trials"].values()}
    assert all(len(small["packs"][pid]) < 4 for pid in changed) and len(changed) <= len(groups)
    if space is None:                                               # one pack group: 4,4,4,4 -> 6 packs
        assert not changed and len(large["packs"]) == 6


def _coarse_fine_repeat():
    return config(pack_size=16, stages=[
        {"name": "coarse", "kind": "search", "sampler": "random", "trials": 32, "data": "train_coarse",
         "set": {"epochs": 15}},
        {"name": "fine", "kind": "search", "sampler": "random", "trials": 16, "from": "coarse", "top_k": 5,
         "set": {"epochs": 40}},
        {"name": "repeat", "kind": "repeat", "from": "fine", "top_n": 3, "seeds": 5, "set": {"epochs": 60}},
        {"name": "select", "kind": "select", "from": "repeat"},
    ])


def test_coarse_to_fine_to_repeat():
    cfg = _coarse_fine_repeat()
    coarse = _plan(cfg, "coarse")
    table = results_table(coarse["trials"], lr_peak(1e-3))
    top_lrs = sorted(t["lr"] for t in sorted(coarse["trials"].values(), key=lambda t: -lr_peak(1e-3)(t))[:5])
    with pytest.raises(UserError, match="needs --previous"):
        _plan(cfg, "fine")
    fine = _plan(cfg, "fine", previous=table)
    margin = 0.1 * math.log(1e3)
    for t in fine["trials"].values():
        assert math.log(top_lrs[0]) - margin - 1e-9 <= math.log(t["lr"]) <= math.log(top_lrs[-1]) + margin + 1e-9
        assert (t["data"], t["epochs"], t["stage"]) == ("train", 40, "fine")
    fine_table = results_table(fine["trials"], lr_peak(2e-3))
    repeat = _plan(cfg, "repeat", previous=fine_table)
    assert len(repeat["trials"]) == 15 and len(repeat["packs"]) == 1
    best3 = sorted(fine["trials"].values(), key=lambda t: -lr_peak(2e-3)(t))[:3]
    for config_trial in best3:
        seeds = sorted(t["seed"] for t in repeat["trials"].values() if t["lr"] == config_trial["lr"])
        assert seeds == [0, 1, 2, 3, 4]
    assert all(t["epochs"] == 60 and t["stage"] == "repeat" for t in repeat["trials"].values())
    with pytest.raises(UserError, match="a select stage has no plan"):
        _plan(cfg, "select")


def test_staged_tuning_lr_first_then_the_rest():
    cfg = config(stages=[
        {"name": "lr", "kind": "search", "sampler": "grid", "tune": ["lr"],
         "space": {"lr": {"log_uniform": [1e-4, 1e-1], "points": 4}}},
        {"name": "rest", "kind": "search", "sampler": "random", "trials": 8, "from": "lr", "fix_best": ["lr"]},
    ], train={"weight_decay": 1e-4})
    first = _plan(cfg, "lr")
    assert sorted(t["lr"] for t in first["trials"].values()) == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])
    assert {(t["weight_decay"], t["dropout"]) for t in first["trials"].values()} == {(1e-4, 0.0)}
    rest = _plan(cfg, "rest", previous=results_table(first["trials"], lr_peak(1e-2)))
    assert [t["lr"] for t in rest["trials"].values()] == pytest.approx([1e-2] * 8)
    assert len({t["dropout"] for t in rest["trials"].values()}) == 8


def test_successive_halving_keeps_the_best_third_under_the_same_ids():
    cfg = config(pack_size=16, stages=[
        {"name": "sh", "kind": "halving", "trials": 27, "eta": 3, "rungs": [2, 6, 18]}])
    rung1 = _plan(cfg, "sh")
    assert len(rung1["trials"]) == 27 and {t["epochs"] for t in rung1["trials"].values()} == {2}
    assert all(trial_id({**t, "epochs": 18}) == tid for tid, t in rung1["trials"].items())
    assert {t["schedule_epochs"] for t in rung1["trials"].values()} == {18}   # one cosine across rungs
    with pytest.raises(UserError, match="needs --history"):
        _plan(cfg, "sh", round_=2)
    rung2 = _plan(cfg, "sh", round_=2, history=results_table(rung1["trials"], lr_peak(1e-3)))
    best9 = sorted(rung1["trials"].values(), key=lambda t: (-lr_peak(1e-3)(t), t["trial_id"]))[:9]
    assert set(rung2["trials"]) == {t["trial_id"] for t in best9}
    assert {t["epochs"] for t in rung2["trials"].values()} == {6}
    assert not set(rung2["packs"]) & set(rung1["packs"])
    rung3 = _plan(cfg, "sh", round_=3, history=results_table(rung2["trials"], lr_peak(1e-3)))
    assert len(rung3["trials"]) == 3 and set(rung3["trials"]) < set(rung2["trials"])
    with pytest.raises(UserError, match="round 4 is outside 1..3"):
        _plan(cfg, "sh", round_=4, history=results_table(rung2["trials"], lr_peak(1e-3)))


def test_tpe_stage_rounds_follow_the_history():
    cfg = config(pack_size=8, stages=[{"name": "bo", "kind": "search", "sampler": "tpe", "rounds": 3}])
    round1 = _plan(cfg, "bo")
    assert len(round1["trials"]) == 8 and dumps(round1) == dumps(_plan(cfg, "bo"))
    r2 = {c: _plan(cfg, "bo", round_=2, history=results_table(round1["trials"], lr_peak(c))) for c in (1e-4, 1e-1)}
    assert set(r2[1e-4]["trials"]) != set(r2[1e-1]["trials"])
    assert not set(r2[1e-4]["trials"]) & set(round1["trials"])


def test_cli_plan_writes_deterministic_json(tmp_path, capsys):
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(YAML_A)
    outs = [tmp_path / "a" / "plan.json", tmp_path / "b" / "plan.json"]
    for out in outs:
        assert main(["plan", "--config", str(cfg_path), "--stage", "coarse", "--out", str(out)]) == 0
    assert outs[0].read_bytes() == outs[1].read_bytes()
    plan = json.loads(outs[0].read_text())
    assert set(plan) == {"stage", "source", "settings", "trials", "packs"} and len(plan["trials"]) == 24
    assert "24 trials in" in capsys.readouterr().out
    assert not list(outs[0].parent.glob(".*.tmp"))
    assert main(["plan", "--config", str(cfg_path), "--stage", "nope", "--out", str(outs[0])]) == 2
    assert "no stage named 'nope'" in capsys.readouterr().err
