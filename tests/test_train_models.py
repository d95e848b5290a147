"""Models (PB-8/9/19/20), initialisation (PB-10), losses (PB-7, PB-4), augmentation (PB-5),
evaluation of a saved trial, and the diagnosis (PB-22/23): each checked for its effect."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from train_fixtures import digits_binary, digits_dir, diabetes, trainer  # noqa: F401

from alchemist.errors import UserError
from alchemist.train.diagnose import diagnose
from alchemist.train.losses import loss_kind, per_trial_loss
from alchemist.train.models import build_model, hidden_widths
from alchemist.trial import complete_trials

WIDE = 512


def first_layer(**cfg) -> torch.Tensor:
    trials = complete_trials([dict(cfg, hidden=[WIDE], seed=s) for s in (0, 1)])
    return build_model(trials, WIDE, 10).l0_w.detach()


@pytest.mark.parametrize("init, std", [
    ("kaiming_normal", math.sqrt(2 / WIDE)), ("xavier_normal", math.sqrt(2 / (2 * WIDE))),
    ("normal", 0.02), ("kaiming_uniform", math.sqrt(2 / WIDE)), ("xavier_uniform", math.sqrt(1 / WIDE)),
    ("torch", 1 / math.sqrt(3 * WIDE))])
def test_init_statistics_match_the_formula(init, std):
    w = first_layer(init=init)
    assert w[0].mean().abs() < 0.05 * std
    assert w[0].std().item() == pytest.approx(std, rel=0.02)
    if "uniform" in init or init == "torch":
        assert w[0].abs().max() <= std * math.sqrt(3) * 1.0001       # bounded: U(-b, b), b = std·√3
    assert not torch.equal(w[0], w[1]), "each trial draws its own init"


def test_scaled_init_and_fan_out_mode():
    assert first_layer(init="scaled", init_scale=0.1)[0].std().item() == pytest.approx(0.1 / math.sqrt(WIDE), rel=0.02)
    trials = complete_trials([dict(hidden=[64], init="kaiming_normal", init_mode="fan_out")])
    w = build_model(trials, 4096, 10).l0_w.detach()
    assert w.std().item() == pytest.approx(math.sqrt(2 / 64), rel=0.02)       # fan_out = 64
    assert first_layer(init="kaiming_normal", activation="tanh")[0].std().item() == pytest.approx(
        5 / 3 / math.sqrt(WIDE), rel=0.02)


def test_biases_zero_and_batch_norm_identity_at_start():
    m = build_model(complete_trials([dict(batch_norm=True, hidden=[16, 16])]), 8, 3)
    assert m.l0_b.abs().max() == 0 and m.out_b.abs().max() == 0
    assert (m.l0_g == 1).all() and (m.l0_beta == 0).all()
    m.train()
    h = m._lin("l0", torch.randn(1, 32, 8) * 5 + 3)
    assert h.mean(1).abs().max() < 1e-5 and h.std(1, unbiased=False).sub(1).abs().max() < 1e-3


@pytest.mark.parametrize("act, fn", [("relu", torch.relu), ("tanh", torch.tanh), ("sigmoid", torch.sigmoid),
                                     ("leaky_relu", F.leaky_relu), ("gelu", F.gelu)])
def test_activation_is_applied(act, fn):
    m = build_model(complete_trials([dict(hidden=[8], activation=act)]), 4, 2)
    x = torch.randn(1, 5, 4)
    with torch.no_grad():
        expected = torch.baddbmm(m.out_b, fn(torch.baddbmm(m.l0_b, x, m.l0_w)), m.out_w)
        torch.testing.assert_close(m(x), expected)


def test_dropout_per_trial_and_per_layer():
    m = build_model(complete_trials([dict(hidden=[256, 256], dropout=[0.5, 0.0], seed=0),
                                     dict(hidden=[256, 256], dropout=[0.0, 0.0], seed=1)]), 8, 2)
    m.train()
    gens = [torch.Generator().manual_seed(0) for _ in range(2)]
    h = torch.ones(2, 64, 256)
    out = m._dropout(h, 0, gens)
    assert (out[0] == 0).float().mean().item() == pytest.approx(0.5, abs=0.03)
    assert set(out[0].unique().tolist()) == {0.0, 2.0}                 # inverted dropout: ×1/(1-p)
    assert torch.equal(out[1], h[1]) and torch.equal(m._dropout(h, 1, gens), h)
    m.eval()
    assert torch.equal(m._dropout(h, 0, gens), h)


def test_auto_width_rule():
    assert hidden_widths({"hidden": "auto", "auto_width": "mean"}, 64, 10) == [40]
    assert hidden_widths({"hidden": "auto", "auto_width": "two_thirds"}, 64, 10) == [56]
    assert hidden_widths({"hidden": [32, 16]}, 64, 10) == [32, 16]


def test_cnn_and_bad_architectures(digits_dir):  # noqa: F811
    tr = trainer(digits_dir, [dict(model="rescnn", cnn_channels=[8, 16], hidden=[32], epochs=3, lr=3e-3)])
    tr.fit()
    assert tr.rows[0][-1]["val_metric"] > 0.8
    with pytest.raises(UserError, match="activation"):
        build_model(complete_trials([dict(activation="swishy")]), 4, 2)
    with pytest.raises(UserError, match="image"):
        build_model(complete_trials([dict(model="cnn")]), 4, 2)


def tiny_net(n_in, n_out, cfg):
    return nn.Sequential(nn.Linear(n_in, 16), nn.ReLU(), nn.Dropout(cfg["dropout"]), nn.Linear(16, n_out))


def test_custom_model_through_import_path(digits_dir):  # noqa: F811
    cfgs = [dict(model="test_train_models:tiny_net", dropout=0.2, lr=lr, seed=s, epochs=3)
            for lr, s in [(1e-3, 0), (1e-2, 1)]]
    pack = trainer(digits_dir, cfgs)
    pack.fit()
    solo = trainer(digits_dir, [cfgs[1]])
    solo.fit()
    assert solo.rows[0][-1]["val_loss"] == pytest.approx(pack.rows[1][-1]["val_loss"], rel=1e-5)
    assert pack.rows[1][-1]["val_metric"] > 0.8
    with pytest.raises(UserError, match="cannot import"):
        build_model(complete_trials([dict(model="no_such_module:net")]), 4, 2)


def test_losses_follow_the_task():
    assert [loss_kind({"loss": "auto"}, t) for t in ("regression", "binary", "multiclass")] == \
        ["mse", "bce", "cross_entropy"]
    with pytest.raises(UserError):
        loss_kind({"loss": "mse"}, "multiclass")
    out, y = torch.randn(2, 30, 4), torch.randint(0, 4, (2, 30))
    torch.testing.assert_close(per_trial_loss(out, y, "cross_entropy")[1], F.cross_entropy(out[1], y[1]))
    w = torch.tensor([1.0, 2.0, 0.5, 3.0])
    torch.testing.assert_close(per_trial_loss(out, y, "cross_entropy", w)[0],
                               F.cross_entropy(out[0], y[0], weight=w))
    yb = torch.randint(0, 2, (2, 30))
    torch.testing.assert_close(per_trial_loss(out[..., :1], yb, "bce")[0],
                               F.binary_cross_entropy_with_logits(out[0, :, 0], yb[0].float()))
    yr = torch.randn(2, 30)
    torch.testing.assert_close(per_trial_loss(out[..., :1], yr, "mse")[1], F.mse_loss(out[1, :, 0], yr[1]))


def test_regression_reports_rmse_and_r2(tmp_path):
    data = diabetes(tmp_path / "diabetes")
    tr = trainer(data, [dict(hidden=[32], epochs=20, lr=3e-3, early_stopping=False)])
    tr.fit()
    row = tr.rows[0][-1]
    assert tr.loss == "mse" and row["val_metric"] == pytest.approx(math.sqrt(row["val_loss"]), rel=1e-4)
    val_y = tr.val.y.double()
    assert row["val_r2"] == pytest.approx(1 - row["val_metric"] ** 2 / val_y.var(unbiased=False).item(), rel=1e-4)
    assert 0 < row["val_r2"] < 1


def test_class_weights_and_oversampling_lift_the_minority(tmp_path):
    data = digits_binary(tmp_path / "bin", rebalance={"method": "oversample", "class_weights": [1.0, 9.0]})
    over = trainer(data, [dict(hidden=[16], epochs=1)])
    order = over.epoch_order()[0]
    assert over.train.y[order].float().mean() > 0.35       # about half the rows are the minority
    prep = json.loads((data / "prep.json").read_text())
    prep["rebalance"]["method"] = "class_weight"
    (data / "prep.json").write_text(json.dumps(prep))
    weighted = trainer(data, [dict(hidden=[16], epochs=1)])
    assert weighted.class_w.tolist() == [1.0, 9.0] and weighted.loss == "bce"


def test_augmentation_shifts_flips_and_noise(digits_dir):  # noqa: F811
    from alchemist.train.data import augment

    x = torch.arange(64.0).view(1, 1, 64).expand(1, 4, 64)
    cfg = complete_trials([dict(augment=True, aug_shift=1, aug_flip=True, aug_noise=0.0)])
    out = augment(x, cfg, [torch.Generator().manual_seed(0)], [1, 8, 8])
    assert out.shape == x.shape and not torch.equal(out, x)
    assert set(out.flatten().tolist()) <= set(range(64)) | {0.0}        # pixels move, none invented
    noisy = augment(x, complete_trials([dict(aug_shift=0, aug_noise=0.5)]), [torch.Generator()], [1, 8, 8])
    assert (noisy - x).std().item() == pytest.approx(0.5, rel=0.2)


def test_saved_trial_evaluates_like_training(digits_dir, tmp_path):  # noqa: F811
    from alchemist.train.data import load_split, read_manifest
    from alchemist.train.evaluate import evaluate
    from alchemist.train.pack import run_pack

    trials = complete_trials([dict(epochs=3, early_stopping=False, trial_id="t1")])
    assert run_pack(trials, digits_dir, tmp_path, pack_id="x", threads=1) == 0
    summary = json.loads((tmp_path / "t1" / "summary.json").read_text())
    val = load_split(digits_dir, "val", read_manifest(digits_dir))
    result = evaluate(tmp_path / "t1", val.X, val.y)
    assert result["value"] == pytest.approx(summary["final_val_metric"])
    assert result["loss"] == pytest.approx(summary["final_val_loss"], rel=1e-5)


def rows(train, val, tl, vl):
    return [{"train_metric": a, "val_metric": b, "train_loss": c, "val_loss": d}
            for a, b, c, d in zip(train, val, tl, vl)]


def test_diagnosis_rules():
    good = rows([0.9, 0.99], [0.9, 0.97], [0.5, 0.05], [0.5, 0.1])
    assert diagnose(good, "completed", "multiclass", 2.3, 0.1)["label"] == "good fit"
    over = rows([0.9, 1.0], [0.9, 0.85], [0.5, 0.01], [0.5, 0.9])
    assert diagnose(over, "completed", "multiclass", 2.3, 0.1)["label"] == "overfit"
    under = rows([0.4, 0.5], [0.4, 0.5], [1.5, 1.4], [1.5, 1.4])
    assert diagnose(under, "completed", "multiclass", 2.3, 0.1)["label"] == "underfit"
    stuck = rows([0.1, 0.1], [0.1, 0.1], [2.3, 2.29], [2.3, 2.3])
    label = diagnose(stuck, "completed", "multiclass", 2.3, 0.1)
    assert label["label"] == "not converged" and "PB-13" in label["next_step"]
    assert diagnose(good, "diverged", "multiclass", 2.3, 0.1)["label"] == "diverged"


def test_binary_task_with_cross_entropy_has_two_outputs(tmp_path):
    """loss: cross_entropy on a binary task: one logit per class (two), trained and evaluated
    like any multiclass model (the manifest counts one class column for binary)."""
    from alchemist.train.data import load_split, read_manifest
    from alchemist.train.evaluate import TrainedTrial
    from alchemist.train.losses import n_outputs
    from alchemist.train.pack import run_pack
    from alchemist.train.sanity import sanity

    data = digits_binary(tmp_path / "bin")
    assert n_outputs("binary", "cross_entropy", 1) == 2 and n_outputs("binary", "bce", 1) == 1
    trials = complete_trials([dict(loss="cross_entropy", hidden=[16], epochs=4, early_stopping=False,
                                   trial_id="ce")])
    assert run_pack(trials, data, tmp_path / "out", pack_id="p", threads=1) == 0
    summary = json.loads((tmp_path / "out" / "ce" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["kept_val_metric"] > 0.95
    val = load_split(data, "val", read_manifest(data))
    trained = TrainedTrial(tmp_path / "out" / "ce")
    assert trained.predict(val.X).shape == (len(val.y), 2)
    assert trained.evaluate(val.X, val.y)["value"] == pytest.approx(summary["final_val_metric"])
    report = sanity(trials[0], data, rows=16, steps=50, threads=1)
    assert report["initial_loss"]["expected"] == pytest.approx(math.log(2))


@pytest.mark.parametrize("model", ["cnn", "rescnn"])
def test_conv_layouts_agree(model):
    """The CUDA layout (one grouped convolution for the pack) computes what the CPU layout (a
    native convolution per trial) does; both run here on the CPU."""
    from alchemist.train.models import PackNet

    trials = complete_trials([dict(model=model, hidden=[16], cnn_channels=[4, 8], batch_norm=True, seed=s)
                              for s in range(3)])
    net = PackNet(trials, 3 * 8 * 8, 4, [3, 8, 8])
    x = torch.randn(3, 10, 192)
    assert net.per_trial_convs
    per_trial = net(x)
    net.per_trial_convs = False
    torch.testing.assert_close(net(x), per_trial, rtol=1e-4, atol=1e-5)
