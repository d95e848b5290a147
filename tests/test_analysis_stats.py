"""Result statistics have one home (alchemist.analysis.stats): the configuration id, usable
statuses and the Student-t interval agree across the seeds table, the winner and the stage table."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from alchemist.analysis.aggregate import seeds_table
from alchemist.analysis.select import select_winner
from alchemist.analysis.stats import config_id, configurations, summarise_values, usable_value
from alchemist.analysis.tables import stage_table
from mlflow_fixtures import make_stage


def _row(tid, lr, seed, value, status="completed"):
    return SimpleNamespace(trial_id=tid, status=status, kept_val_metric=value,
                           params_json=json.dumps({"lr": lr, "seed": seed, "trial_id": tid}))


def test_configurations_mean_and_student_t_interval():
    rows = [_row("a", 0.1, 0, 0.8), _row("b", 0.1, 1, 0.9), _row("c", 0.1, 2, 1.0),
            _row("d", 0.2, 0, 0.5), _row("e", 0.1, 3, float("nan")), _row("f", 0.1, 4, 0.99, "diverged")]
    three, one = sorted(configurations(rows), key=lambda c: -c["n"])
    assert three["config_id"] == config_id({"lr": 0.1, "seed": 7, "trial_id": "x"})
    assert three["n"] == 3 and three["mean"] == pytest.approx(0.9)
    assert three["ci_half_width"] == pytest.approx(4.303 * 0.1 / np.sqrt(3), rel=1e-3)
    assert three["failed"] == ["e", "f"] and three["seeds"] == [0, 1, 2]
    assert one["n"] == 1 and one["ci"] is None and one["std"] is None


def test_usable_value_and_empty_summary():
    assert usable_value("completed", "0.5") == 0.5 and usable_value("early_stopped", 1) == 1.0
    assert usable_value("diverged", 0.5) is None and usable_value("completed", float("inf")) is None
    assert usable_value("completed", None) is None
    assert summarise_values([]) == {"n": 0, "mean": None, "std": None, "ci_half_width": None, "ci": None}


def test_one_configuration_id_in_every_table(tmp_path):
    make_stage(tmp_path, "repeat", 6, epochs=4, seeds=3, data="train")
    table = stage_table(tmp_path / "repeat")
    seeds = seeds_table(table)
    winner = select_winner(table)
    assert set(seeds["config_id"]) == set(table["config_id"])
    assert winner["winner"]["config_id"] in set(seeds["config_id"])
    by_config = table.groupby("config_id")["trial_id"].apply(sorted).to_dict()
    for c in winner["configs"]:
        assert sorted(c["trial_ids"] + c["failed"]) == by_config[c["config_id"]]
    assert isinstance(seeds, pd.DataFrame) and (seeds["n"] <= 3).all()


def test_settings_added_later_rename_nothing_at_their_defaults():
    """A trial's id and its configuration id ignore LATER_KEYS at their defaults (so adding a
    setting keeps earlier results' ids) and change as soon as one is set."""
    from alchemist.trial import LATER_KEYS, TRIAL_DEFAULTS, make_trial, trial_id

    before = {k: v for k, v in TRIAL_DEFAULTS.items() if k not in LATER_KEYS}
    now = make_trial({}, {"lr": 0.01})
    assert now["trial_id"] == trial_id({**before, "lr": 0.01})
    assert config_id(now) == config_id({**before, "lr": 0.01, "trial_id": "x", "seed": 3})
    rotated = make_trial({}, {"lr": 0.01, "aug_rotate": 5.0})
    assert rotated["trial_id"] != now["trial_id"] and config_id(rotated) != config_id(now)


def test_a_configuration_keeps_its_family_id_across_stages():
    """The fine stage's configuration and its repeat (more epochs, another stage and split) share
    a family id; another hyperparameter does not."""
    from alchemist.analysis.stats import config_id, family_id

    fine = {"lr": 0.01, "dropout": 0.2, "epochs": 30, "stage": "fine", "data": "train", "seed": 0}
    repeat = {**fine, "epochs": 40, "stage": "repeat", "seed": 3}
    assert config_id(fine) != config_id(repeat) and family_id(fine) == family_id(repeat)
    assert family_id({**fine, "lr": 0.02}) != family_id(fine)
