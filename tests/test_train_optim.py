"""Optimisers (PB-11), LR scaling (PB-12), schedules (PB-14), clipping (PB-16), accumulation
(PB-17), L1/L2 (PB-20): each checked for its effect against torch or the closed-form formula."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from train_fixtures import digits_dir, trainer  # noqa: F401

from alchemist.train.data import Split
from alchemist.train.optim import PackSchedule, effective_lr
from alchemist.trial import complete_trials


def reference_mlp(tr, k: int) -> torch.nn.Sequential:
    """An nn.Sequential with trial k's initial weights (the engine stores W as (in, out))."""
    m = tr.model
    ref = torch.nn.Sequential(torch.nn.Linear(*m.l0_w.shape[1:]), torch.nn.ReLU(),
                              torch.nn.Linear(*m.out_w.shape[1:]))
    with torch.no_grad():
        for lin, name in ((ref[0], "l0"), (ref[2], "out")):
            lin.weight.copy_(getattr(m, f"{name}_w")[k].T)
            lin.bias.copy_(getattr(m, f"{name}_b")[k, 0])
    return ref


TORCH = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
         "adagrad": torch.optim.Adagrad, "adadelta": torch.optim.Adadelta, "rmsprop": torch.optim.RMSprop}
CASES = {  # two trials per optimiser, differing in every per-trial setting it has
    "sgd": [dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3), dict(lr=0.05)],
    "adam": [dict(lr=1e-3, weight_decay=1e-2, beta1=0.8), dict(lr=3e-3, beta2=0.99)],
    "adamw": [dict(lr=1e-3, weight_decay=0.1), dict(lr=2e-3, weight_decay=0.0, beta1=0.85)],
    "adagrad": [dict(lr=0.05, weight_decay=1e-3), dict(lr=0.01)],
    "adadelta": [dict(lr=1.0), dict(lr=0.5, weight_decay=1e-3)],
    "rmsprop": [dict(lr=1e-3, momentum=0.5), dict(lr=3e-3, weight_decay=1e-3)],
}


def torch_kwargs(kind: str, t: dict) -> dict:
    kw = {"lr": t["lr"], "weight_decay": t["weight_decay"]}
    if kind == "sgd":
        kw.update(momentum=t["momentum"], nesterov=t["nesterov"])
    if kind in ("adam", "adamw"):
        kw["betas"] = (t["beta1"], t["beta2"])
    if kind == "rmsprop":
        kw["momentum"] = t["momentum"]
    return kw


@pytest.mark.parametrize("kind", list(CASES))
def test_optimizer_moves_parameters_as_torch_does(digits_dir, kind):
    trials = [dict(c, optimizer=kind, seed=i, hidden=[32]) for i, c in enumerate(CASES[kind])]
    tr = trainer(digits_dir, trials)
    X, y = tr.train.X[:200], tr.train.y[:200]
    idx = torch.arange(200).expand(2, 200)
    refs = [reference_mlp(tr, k) for k in range(2)]
    opts = [TORCH[kind](r.parameters(), **torch_kwargs(kind, t)) for r, t in zip(refs, tr.trials)]
    for _ in range(5):
        loss, _ = tr.forward_loss(idx)
        tr.backward(loss)
        tr.optimizer_step(probe=False)
        for ref, opt in zip(refs, opts):
            opt.zero_grad()
            F.cross_entropy(ref(X), y).backward()
            opt.step()
    for k, ref in enumerate(refs):
        moved = (tr.model.l0_w[k].T - reference_mlp(trainer(digits_dir, [trials[k]]), 0)[0].weight).abs().max()
        assert moved > 1e-4, "the parameters must actually move"
        # RMSprop divides by sqrt(mean g²): rows of near-constant pixels amplify float noise
        torch.testing.assert_close(tr.model.l0_w[k].T, ref[0].weight, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(tr.model.out_b[k, 0], ref[2].bias, rtol=1e-4, atol=2e-6)


def lr_curve(cfg: dict, epochs: int = 30, losses=None) -> list[float]:
    trial = complete_trials([dict(cfg, epochs=epochs)])[0]
    sched, out = PackSchedule([trial], epochs), []
    for e in range(epochs):
        out.append(float(sched.lrs()[0]))
        sched.step([losses[e] if losses else 1.0])
    return out


def restarts(e, lr, t0, mult, eta):
    t_i, t_cur = t0, e
    while t_cur >= t_i:
        t_cur, t_i = t_cur - t_i, t_i * mult
    return eta + (lr - eta) * (1 + math.cos(math.pi * t_cur / t_i)) / 2


FORMULAS = {  # epoch e (0-based) -> LR, the textbook closed forms (PB-14)
    "constant": (dict(), lambda e: 0.1),
    "step": (dict(step_size=7, gamma=0.5), lambda e: 0.1 * 0.5 ** (e // 7)),
    "multistep": (dict(milestones=[5, 12], gamma=0.1), lambda e: 0.1 * 0.1 ** ((e >= 5) + (e >= 12))),
    "exponential": (dict(gamma=0.9), lambda e: 0.1 * 0.9 ** e),
    "cosine": (dict(eta_min=0.001), lambda e: 0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * e / 30)) / 2),
    "cosine_restarts": (dict(t_0=4, t_mult=2, eta_min=0.0), lambda e: restarts(e, 0.1, 4, 2, 0.0)),
}


@pytest.mark.parametrize("kind", list(FORMULAS))
def test_schedule_follows_its_formula(kind):
    extra, formula = FORMULAS[kind]
    got = lr_curve(dict(extra, schedule=kind, lr=0.1))
    assert got == pytest.approx([formula(e) for e in range(30)], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("kind", ["step", "cosine", "plateau"])
def test_linear_warmup_composes_with_schedule(kind):
    w = 4
    got = lr_curve(dict(schedule=kind, lr=0.1, warmup_epochs=w, step_size=5, gamma=0.5,
                        plateau_patience=100))
    assert got[:w + 1] == pytest.approx([0.1 * (e + 1) / (w + 1) for e in range(w + 1)], rel=1e-9)
    after = {"step": lambda e: 0.1 * 0.5 ** ((e - w) // 5),
             "cosine": lambda e: 0.1 * (1 + math.cos(math.pi * (e - w) / (30 - w))) / 2,
             "plateau": lambda e: 0.1}[kind]
    assert got[w:] == pytest.approx([after(e) for e in range(w, 30)], rel=1e-9, abs=1e-12)


def test_plateau_divides_lr_when_val_loss_stalls():
    got = lr_curve(dict(schedule="plateau", lr=0.1, plateau_factor=0.2, plateau_patience=2),
                   epochs=12, losses=[1.0] * 12)
    # torch's rule: reduce after `patience` epochs without improvement, i.e. every 3rd flat epoch
    assert got == pytest.approx([0.1 * 0.2 ** max(0, (e - 1) // 3) for e in range(12)], rel=1e-9)
    assert lr_curve(dict(schedule="plateau", lr=0.1, plateau_patience=2), epochs=12,
                    losses=[1 / (e + 1) for e in range(12)]) == pytest.approx([0.1] * 12)


def test_lr_scales_linearly_with_batch_size():
    cfg = complete_trials([dict(lr=0.1, batch_size=256, lr_reference_batch=64)])[0]
    assert effective_lr(cfg) == pytest.approx(0.4)
    assert lr_curve(dict(lr=0.1, batch_size=256, lr_reference_batch=64))[0] == pytest.approx(0.4)


def test_global_norm_clipping_matches_torch(digits_dir):
    tr = trainer(digits_dir, [dict(optimizer="sgd", lr=0.1, grad_clip=0.5, seed=0, hidden=[32]),
                              dict(optimizer="sgd", lr=0.1, seed=1, hidden=[32])])
    ref = reference_mlp(tr, 0)
    X, y = tr.train.X[:100], tr.train.y[:100]
    F.cross_entropy(ref(X), y).backward()
    norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.5)
    assert norm > 0.5, "the test needs a gradient above the threshold"
    loss, _ = tr.forward_loss(torch.arange(100).expand(2, 100))
    tr.backward(loss)
    unclipped_before = tr.model.l0_w.grad[1].clone()
    tr.optimizer_step(probe=False)
    torch.testing.assert_close(tr.model.l0_w[0].T, (ref[0].weight - 0.1 * ref[0].weight.grad).detach(),
                               rtol=1e-5, atol=1e-7)
    assert unclipped_before.abs().sum() > 0     # trial 1 (no clipping) got its full gradient
    solo = trainer(digits_dir, [dict(optimizer="sgd", lr=0.1, seed=1, hidden=[32])])
    loss, _ = solo.forward_loss(torch.arange(100).expand(1, 100))
    solo.backward(loss)
    solo.optimizer_step(probe=False)
    assert torch.equal(solo.model.l0_w[0], tr.model.l0_w[1])


def test_gradient_accumulation_equals_the_larger_batch(digits_dir):
    big = trainer(digits_dir, [dict(optimizer="sgd", lr=0.1, batch_size=64, epochs=1, hidden=[32])])
    acc = trainer(digits_dir, [dict(optimizer="sgd", lr=0.1, batch_size=32, grad_accum=2, epochs=1,
                                    hidden=[32])])
    for t in (big, acc):      # 1024 rows: every accumulation group is a full 2 x 32 = 64 rows
        t.train = Split(t.train.X[:1024], t.train.y[:1024])
        t.fit()
    assert acc.opt.t == big.opt.t          # one optimiser step per 64 rows (PB-17)
    torch.testing.assert_close(acc.model.l0_w, big.model.l0_w, rtol=1e-4, atol=1e-6)


def test_l1_and_l2_shrink_weights(digits_dir):
    tr = trainer(digits_dir, [dict(seed=0, epochs=5, early_stopping=False),
                              dict(seed=0, epochs=5, early_stopping=False, l1=1e-3),
                              dict(seed=0, epochs=5, early_stopping=False, weight_decay=0.1)])
    tr.fit()
    norms = tr.model.l0_w.abs().flatten(1).sum(1)
    assert norms[1] < 0.9 * norms[0] and norms[2] < 0.95 * norms[0]
    small = (tr.model.l0_w.abs() < 1e-3).flatten(1).float().mean(1)
    assert small[1] > small[0]                 # L1 drives weights towards exactly small values
