"""Selecting the winner over seeds (PB-31): mean, std, t-interval, within-noise flag."""
from __future__ import annotations

import json
import math
import statistics

import pytest

from alchemist.cli import main
from alchemist.errors import UserError
from alchemist.analysis.tables import check_table
from alchemist.search.history import ranked, told_history
from alchemist.analysis.select import select_winner
from alchemist.analysis.stats import t_quantile
from alchemist.trial import make_trial
from search_fixtures import lr_peak, results_table


def _repeat(values_by_lr: dict[float, list[float]], mode: str = "max", failed=()):
    trials, value = [], {}
    for lr, values in values_by_lr.items():
        for seed, v in enumerate(values):
            t = make_trial({}, {"lr": lr, "seed": seed, "epochs": 60}, stage="repeat", data="train")
            trials.append(t)
            value[t["trial_id"]] = v
    status = lambda t: "diverged" if (t["lr"], t["seed"]) in failed else "completed"   # noqa: E731
    return results_table(trials, lambda t: value[t["trial_id"]], mode, status)


def test_mean_std_and_t_interval_per_configuration():
    values = [0.90, 0.92, 0.91, 0.93, 0.94]
    result = select_winner(_repeat({1e-3: values, 1e-2: [0.5, 0.52, 0.51, 0.5, 0.49]}))
    w = result["winner"]
    assert w["params"]["lr"] == 1e-3 and "seed" not in w["params"] and sorted(w["seeds"]) == [0, 1, 2, 3, 4]
    std = statistics.stdev(values)
    half = 2.7764451 * std / math.sqrt(5)                           # t(0.975, 4)
    assert (w["n"], w["mean"], w["std"]) == (5, pytest.approx(0.92), pytest.approx(std))
    assert w["ci_half_width"] == pytest.approx(half, rel=1e-6)
    assert w["ci"] == pytest.approx([0.92 - half, 0.92 + half])
    assert result["within_noise"] is False and result["runner_up"]["params"]["lr"] == 1e-2
    assert t_quantile(0.95, 4) == pytest.approx(2.7764451, rel=1e-6)


def test_overlapping_intervals_are_flagged_within_noise():
    result = select_winner(_repeat({1e-3: [0.90, 0.95, 0.92], 1e-2: [0.91, 0.93, 0.89]}))
    assert result["within_noise"] is True
    assert result["winner"]["params"]["lr"] == 1e-2                # a tie within noise: the smaller CI
    assert result["runner_up"]["params"]["lr"] == 1e-3 and result["runner_up"]["mean"] > result["winner"]["mean"]
    assert result["tie_break"]["rule"] == "smaller_ci" and "2 configurations are within noise" in \
        result["tie_break"]["text"]
    steady = select_winner(_repeat({1e-3: [0.92, 0.93, 0.92], 1e-2: [0.90, 0.95, 0.88]}))
    assert steady["winner"]["params"]["lr"] == 1e-3 and steady["tie_break"]["rule"] == "best_mean"
    clear = select_winner(_repeat({1e-3: [0.90, 0.92, 0.91], 1e-2: [0.5, 0.52, 0.51]}))
    assert clear["tie_break"]["text"] == "the best mean, clear of the rest" and not clear["within_noise"]


def test_mode_min_and_failed_seeds():
    table = _repeat({1e-3: [0.30, 0.31, 0.29], 1e-2: [0.10, 0.11, 9.0]}, mode="min",
                    failed={(1e-2, 2)})
    result = select_winner(table)
    w = result["winner"]
    assert w["params"]["lr"] == 1e-2 and w["n"] == 2 and len(w["failed"]) == 1
    assert w["mean"] == pytest.approx(0.105)
    assert [c["params"]["lr"] for c in result["configs"]] == [1e-2, 1e-3]


def test_single_seed_cannot_be_told_apart():
    result = select_winner(_repeat({1e-3: [0.9], 1e-2: [0.8]}))
    assert result["winner"]["ci"] is None and result["within_noise"] is True
    with pytest.raises(UserError, match="no completed trial"):
        select_winner(_repeat({1e-3: [0.9]}, failed={(1e-3, 0)}))


def test_cli_select_writes_the_winner(tmp_path, capsys):
    table = tmp_path / "repeat.parquet"
    _repeat({1e-3: [0.90, 0.92, 0.91], 1e-2: [0.5, 0.52, 0.51]}).to_parquet(table)
    out = tmp_path / "select" / "winner.json"
    assert main(["select", "--table", str(table), "--out", str(out)]) == 0
    winner = json.loads(out.read_text())
    assert winner["winner"]["params"]["lr"] == 1e-3 and winner["mode"] == "max"
    printed = capsys.readouterr().out
    assert f"winner {winner['winner']['config_id']}: val_metric 0.91 ± " in printed and "95% CI, n=3" in printed
    assert "clearly ahead of runner-up" in printed
    assert main(["select", "--table", str(tmp_path / "missing.parquet"), "--out", str(out)]) == 2


def test_ranking_is_best_first_with_ids_breaking_ties():
    trials = [{"trial_id": f"t{i}", "lr": 10.0 ** -i} for i in range(1, 5)]
    table = check_table(results_table(trials, lr_peak(1e-3)))
    assert [r.trial_id for r in ranked(table)][:2] == ["t3", "t2"]  # t2 and t4 tie; id breaks it


def test_failed_rows_are_not_ranked_and_are_told_as_the_worst_value():
    trials = [{"trial_id": f"t{i}", "lr": 10.0 ** -i} for i in range(1, 5)]
    table = results_table(trials, lr_peak(1e-3),
                          status=lambda t: "diverged" if t["lr"] == 1e-3 else "completed")
    assert "t3" not in [r.trial_id for r in ranked(table)]
    told = {tid: value for tid, _, value in told_history(table)}
    assert told["t3"] == min(told.values()) == lr_peak(1e-3)(trials[0])
