"""`alchemist lr-find` (PB-13): exponential LR sweep, table, plot, suggestion."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from train_fixtures import digits_dir  # noqa: F401

from alchemist.cli import main
from alchemist.train.lr_find import suggest


def test_lr_find_writes_table_plot_and_a_sensible_suggestion(digits_dir, tmp_path):  # noqa: F811
    out = tmp_path / "lrf"
    assert main(["lr-find", "--data-dir", str(digits_dir), "--out-dir", str(out), "--threads", "1",
                 "--set", "optimizer=\"sgd\"", "--set", "hidden=[64]", "--steps", "150"]) == 0
    table = pd.read_parquet(out / "lr_find.parquet")
    assert list(table.columns) == ["step", "lr", "loss", "smoothed_loss"]
    ratios = table["lr"].iloc[1:].to_numpy() / table["lr"].iloc[:-1].to_numpy()
    assert np.allclose(ratios, ratios[0]) and ratios[0] > 1          # exponential sweep
    result = json.loads((out / "lr_find.json").read_text())
    assert result["stopped_on_divergence"]                        # SGD blows up before lr = 10
    assert 1e-3 <= result["suggested_lr"] <= 3.0
    assert (out / "lr_find.png").read_bytes()[:4] == b"\x89PNG"


def test_suggestion_is_a_tenth_of_the_minimum_or_the_valley():
    lrs = np.geomspace(1e-5, 1, 60)
    x = np.log10(lrs)
    loss = 2 - np.tanh(2 * (x + 2.5)) + np.where(x > -1, (x + 1) ** 2 * 30, 0)   # minimum near 10^-1
    assert suggest(lrs, loss) == pytest.approx(lrs[np.argmin(loss)] / 10)
    falling = 2 - np.tanh(2 * (x + 2.5))                  # never blows up: the valley's 2/3 point
    assert 10 ** -2.5 < suggest(lrs, falling, diverged=False) < 10 ** -0.5


def test_smoothed_loss_does_not_lag_and_the_axis_stays_on_the_losses():
    """The smoothed curve falls where the raw loss falls and bottoms out where it does (an EMA
    with β = 0.98 trailed it by most of a decade); the y-axis starts at 0 at the lowest, not −2."""
    from alchemist.report.plots import loss_limits
    from alchemist.train.lr_find import smooth

    lrs = np.geomspace(1e-7, 10, 200)
    x = np.log10(lrs)
    noise = np.random.default_rng(0).normal(0, 0.05, len(x))
    loss = 2.3 - 2 * np.tanh(np.clip(x + 4, 0, None)) + np.where(x > -1, (x + 1) ** 2 * 40, 0) + noise
    smoothed = smooth(lrs, loss)
    assert abs(x[np.argmin(smoothed)] - (-1)) <= 0.25

    def halfway(curve):                      # where the fall from 2.3 to 0.3 is half done
        return x[np.argmax(np.asarray(curve) < 1.3)]
    ema, avg = [], 0.0
    for i, v in enumerate(loss):
        avg = 0.98 * avg + 0.02 * v
        ema.append(avg / (1 - 0.98 ** (i + 1)))
    true = -4 + np.arctanh(0.5)
    assert abs(halfway(smoothed) - true) <= 0.15
    assert halfway(ema) - true > 0.5                              # what the old curve did
    bottom, top = loss_limits(pd.Series(loss))
    assert 0 <= bottom < loss.min() and loss.min() < top < loss.max()
