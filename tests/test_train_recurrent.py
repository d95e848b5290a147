"""Embedding + LSTM / GRU packs on token sequences (alchemist.train.recurrent): each trial equals
its solo run (1e-5; on CPU every trial runs torch's own recurrent kernel), the CUDA layout
(one batched matmul per step for the pack) computes the same, trailing padding leaves the state
alone, the LSTM's forget gate starts open (PB-16), and they learn the built-in counting task
(synthetic:sequences)."""
from __future__ import annotations

import pytest
import torch
from train_fixtures import trainer

from alchemist.config import validate
from alchemist.data.prep import prepare, write
from alchemist.errors import UserError
from alchemist.train.models import build_model
from alchemist.trial import complete_trials


@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    out = tmp_path_factory.mktemp("sequences")
    write(prepare(validate({"data": {"source": "synthetic:sequences:1500"}})["data"]), out)
    return out


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_recurrent_pack_equals_each_trial_alone_and_learns(sequences, kind):
    cfgs = [dict(model=kind, hidden=[16, 32], lr=lr, seed=s, epochs=6, early_stopping=False,
                 grad_clip=5.0, dropout=d)
            for lr, s, d in [(3e-3, 0, 0.0), (1e-2, 1, 0.1), (3e-2, 2, 0.0)]]
    pack = trainer(sequences, cfgs)
    pack.fit()
    for k in (1, 2):
        solo = trainer(sequences, [cfgs[k]])
        solo.fit()
        losses = [r["train_loss"] for r in solo.rows[0]]      # the output layer's batched matmul
        assert losses[:2] == pytest.approx([r["train_loss"] for r in pack.rows[k]][:2], rel=1e-5)
        assert losses == pytest.approx([r["train_loss"] for r in pack.rows[k]], rel=1e-3)
    assert max(rows[-1]["val_metric"] for rows in pack.rows) > 0.75     # counting, learnt


def test_padding_keeps_the_state_and_the_forget_gate_starts_open():
    trials = complete_trials([dict(model="lstm", hidden=[8, 8], seed=0)])
    net = build_model(trials, 5, 2, sequence={"vocab": 6, "length": 5}).eval()
    H = 8
    assert torch.all(net.b[0, 0, H:2 * H] == 1.0)
    x = torch.tensor([[[3.0, 4, 5, 0, 0]]])
    same = torch.tensor([[[3.0, 4, 5, 0, 0]]])
    longer = torch.tensor([[[3.0, 4, 5, 1, 0]]])
    with torch.no_grad():
        assert torch.equal(net(x), net(same)) and not torch.equal(net(x), net(longer))
        shorter = build_model(trials, 3, 2, sequence={"vocab": 6, "length": 3}).eval()(x[..., :3])
    torch.testing.assert_close(net(x).detach(), shorter)                 # trailing padding = absent
    with pytest.raises(UserError, match="token sequences"):
        build_model(trials, 5, 2)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_cuda_layout_computes_the_same(kind):
    """The stacked layout (CUDA: a batched matmul per time step for all K trials) against torch's
    kernel per trial (CPU), on sequences with padding inside, at the end and everywhere."""
    trials = complete_trials([dict(model=kind, hidden=[8, 16], seed=s) for s in range(3)])
    net = build_model(trials, 7, 2, sequence={"vocab": 10, "length": 7}).eval()
    x = torch.randint(0, 10, (3, 5, 7)).float()
    x[:, :, 5:], x[:, 0], x[:, 1, 2] = 0, 0, 0
    assert net.fused
    with torch.no_grad():
        fused = net(x)
        net.fused = False
        torch.testing.assert_close(net(x), fused, rtol=1e-5, atol=1e-6)
