"""The parse-time model check (alchemist.train.model_check through alchemist.dag.check_or_exit):
the settings a custom factory never reads leave the search, with one warning; the models of a
config are each checked once."""
from __future__ import annotations

import copy

import yaml

from alchemist.config import validate
from alchemist.dag import check_or_exit
from alchemist.search.stages import parse_search
from alchemist.train.model_check import models_to_check
from conftest import REPO


def _config(**train):
    config = validate(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    config["train"].update(train)
    return config


def test_settings_a_factory_never_reads_leave_the_search(tmp_path, capsys):
    config = check_or_exit(_config(model="user_models:two_layer"), cache_dir=tmp_path / "a")
    assert config["search"]["ignore"] == ["dropout"]
    assert "search.space.dropout: model 'user_models:two_layer' never reads 'dropout'" in capsys.readouterr().err
    space = parse_search(config).space(parse_search(config).stage("coarse"))
    assert "dropout" not in space and {"lr", "weight_decay"} <= set(space)
    again = check_or_exit(_config(model="user_models:two_layer"), cache_dir=tmp_path / "a")   # cached
    assert again["search"]["ignore"] == ["dropout"] and "warning" not in capsys.readouterr().err
    reads = check_or_exit(_config(model="user_models:reads_dropout"), cache_dir=tmp_path / "b")
    assert not reads["search"].get("ignore")
    builtin = check_or_exit(_config(), cache_dir=tmp_path / "c")
    assert not builtin["search"].get("ignore")


def test_each_distinct_model_is_checked_once():
    config = _config()
    stages = copy.deepcopy(config["search"]["stages"])
    stages[1]["set"] = {**stages[1]["set"], "hidden": [32]}
    space = {**config["search"]["space"], "model": {"choice": ["mlp", "resmlp"]}}
    found = models_to_check(config["train"], space, stages)
    assert [w for w, _ in found] == ["train", "search.space.model", "search.stages.fine.set"]
    assert [t["model"] for _, t in found] == ["mlp", "resmlp", "mlp"] and found[2][1]["hidden"] == [32]


def test_a_batch_larger_than_a_split_is_said_once(tmp_path, capsys):
    check_or_exit(_config(batch_size=5000), cache_dir=tmp_path / "d")
    err = capsys.readouterr().err
    assert ("train.batch_size 5000 (× grad_accum 1) is more than the train_coarse split's 574 rows: "
            "every epoch is one batch of all of them") in err
    check_or_exit(_config(batch_size=5000), cache_dir=tmp_path / "d")
    assert "batch_size" not in capsys.readouterr().err            # a passed check is cached
