"""Transfer learning (alchemist.train.transfer, PB-12): frozen parameters do not move until their
epoch comes, each group learns at its own rate, and `init_from` starts every trial from saved
weights (an alchemist model.pt or a custom module's state_dict; a new head stays fresh)."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from train_fixtures import digits_dir, trainer  # noqa: F401

from alchemist.errors import UserError

BASE = dict(model="mlp", hidden=[32], epochs=4, early_stopping=False, lr=1e-2, seed=0)


def states_per_epoch(pack) -> list[list[dict]]:
    seen = [[pack.model.trial_state(k) for k in range(pack.K)]]
    pack.fit(progress=lambda tr: seen.append([tr.model.trial_state(k) for k in range(tr.K)]))
    return seen


def test_frozen_layers_do_not_move_until_their_epoch(digits_dir):  # noqa: F811
    pack = trainer(digits_dir, [dict(BASE, freeze={"l0_*": None}),           # frozen throughout
                                dict(BASE, freeze={"l0_*": 2}, seed=1),      # unfrozen after epoch 2
                                dict(BASE, seed=2, grad_clip=1.0)])
    seen = states_per_epoch(pack)
    assert len(seen) == 5
    for epoch, states in enumerate(seen):
        assert torch.equal(states[0]["l0_w"], seen[0][0]["l0_w"])
        assert torch.equal(states[0]["l0_b"], seen[0][0]["l0_b"])
        assert torch.equal(states[1]["l0_w"], seen[0][1]["l0_w"]) == (epoch <= 2), epoch
    for k in range(3):                                       # the head trains in every trial
        assert not torch.equal(seen[1][k]["out_w"], seen[0][k]["out_w"])
    assert not torch.equal(seen[1][2]["l0_w"], seen[0][2]["l0_w"])


def test_each_group_learns_at_its_own_rate(digits_dir):  # noqa: F811
    """Plain SGD, one step: the head's update is 0.1x the same trial's without groups, the first
    layer's is equal (same seed: same init, same batch; pack == solo keeps them independent)."""
    sgd = dict(BASE, optimizer="sgd", lr=0.1)
    pack = trainer(digits_dir, [sgd, dict(sgd, lr_groups={"out_*": 0.1, "l0_b": 2.0})])
    before = [pack.model.trial_state(k) for k in range(2)]
    pack.step(next(pack.minibatches()))
    after = [pack.model.trial_state(k) for k in range(2)]
    delta = [{n: after[k][n] - before[k][n] for n in before[k]} for k in range(2)]
    assert torch.equal(before[0]["out_w"], before[1]["out_w"])
    assert torch.allclose(delta[1]["out_w"], 0.1 * delta[0]["out_w"], rtol=1e-3, atol=2e-8)
    assert torch.allclose(delta[1]["l0_b"], 2.0 * delta[0]["l0_b"], rtol=1e-3, atol=2e-8)
    assert torch.allclose(delta[1]["l0_w"], delta[0]["l0_w"], rtol=1e-4, atol=2e-8)
    assert delta[0]["out_w"].abs().max() > 0


def test_init_from_a_trained_trial_and_from_a_custom_state_dict(digits_dir, tmp_path, capsys):  # noqa: F811
    first = trainer(digits_dir, [dict(BASE, epochs=2)])
    first.fit()
    torch.save({"config": first.trials[0], "state": first.model.trial_state(0)}, tmp_path / "model.pt")
    second = trainer(digits_dir, [dict(BASE, seed=5, init_from=str(tmp_path / "model.pt")),
                                  dict(BASE, seed=6, init_from=str(tmp_path / "model.pt"))])
    for k in range(2):
        for name, tensor in first.model.trial_state(0).items():
            assert torch.equal(second.model.trial_state(k)[name], tensor), name
    assert "loaded 4 of 4 tensors" in capsys.readouterr().err
    # a pretrained body with another head (5 classes): the body loads, the head stays fresh
    body = nn.Sequential(nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 5))
    torch.save(body.state_dict(), tmp_path / "body.pt")
    custom = trainer(digits_dir, [dict(BASE, model="test_train_transfer:small_net", init_from=str(tmp_path / "body.pt"),
                                       freeze={"0.*": None}, epochs=2)])
    state = custom.model.trial_state(0)
    assert torch.equal(state["0.weight"], body[0].weight) and state["2.weight"].shape == (10, 24)
    assert "kept fresh (not in the file, or another shape): 2.weight, 2.bias" in capsys.readouterr().err
    custom.fit()
    assert torch.equal(custom.model.trial_state(0)["0.weight"], body[0].weight)


def small_net(n_in, n_out, cfg):
    return nn.Sequential(nn.Linear(n_in, 24), nn.ReLU(), nn.Linear(24, n_out))


@pytest.mark.parametrize("setting, fragment", [
    ({"freeze": {"features.*": 1}}, "pattern 'features.*' matches no parameter"),
    ({"lr_groups": {"conv*": 0.1}}, "names: l0_w, l0_b, out_w, out_b"),
    ({"init_from": "nowhere.pt"}, "train.init_from: file not found"),
])
def test_bad_transfer_settings_are_one_line(digits_dir, setting, fragment):  # noqa: F811
    with pytest.raises(UserError) as err:
        trainer(digits_dir, [dict(BASE, **setting)])
    assert fragment in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_an_unfrozen_parameter_starts_its_optimiser_afresh(digits_dir, optimizer):  # noqa: F811
    """As torch counts a parameter's steps from its first update: after 20 frozen steps, the
    first Adam step of the first layer moves each weight by about lr (bias-corrected), not 3-6x
    that; RMSprop's running averages of a frozen row are not touched."""
    pack = trainer(digits_dir, [dict(BASE, optimizer=optimizer, lr=1e-2, weight_decay=1e-3, freeze={"l0_*": 1})])
    batches = pack.minibatches()
    for _ in range(20):
        pack.step(next(batches))
    l0 = next(i for i, s in enumerate(pack.slots) if s.name == "l0_w")
    if optimizer == "rmsprop":
        assert not pack.opt.state[l0] or not pack.opt.state[l0]["sq"].any()
    before = pack.model.trial_state(0)["l0_w"]
    pack.trial_epoch = [1]
    pack.set_lr()                                       # the epoch after the frozen one
    pack.step(next(batches))
    moved = (pack.model.trial_state(0)["l0_w"] - before).abs().max().item()
    assert 0 < moved <= (1.01e-2 if optimizer == "adam" else 1.1e-1)
