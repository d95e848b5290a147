"""A user's model, `package.module:callable(n_inputs, n_outputs, config)`, in a pack: K separate
instances run one after another, each initialised from its trial's seed and init setting and with
its own dropout stream (torch's global RNG state, saved per trial), so pack == solo holds."""
from __future__ import annotations

import importlib

import torch
from torch import nn

from alchemist.errors import UserError
from alchemist.train.params import Slot, init_weight_, trial_generator


class CustomPack(nn.Module):
    """K instances of a user model `package.module:callable(n_inputs, n_outputs, config)`."""

    def __init__(self, trials: list[dict], n_in: int, n_out: int, image_shape=None):
        super().__init__()
        module_name, _, attr = trials[0]["model"].partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise UserError(f"cannot import model {trials[0]['model']!r}: {err}") from err
        self.K, self.nets, self.rng = len(trials), nn.ModuleList(), []
        for t in trials:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(t["seed"]))
                net = factory(n_in, n_out, {**t, "image_shape": image_shape})
                self.rng.append(torch.get_rng_state())   # the trial's own dropout stream
            if t["init"] != "torch":
                gen = trial_generator(t, "init")
                for m in net.modules():
                    if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
                        init_weight_(m.weight.data, fan_in, fan_out, t, gen)
                        if m.bias is not None:
                            nn.init.zeros_(m.bias)
            self.nets.append(net)

    def slots(self):
        return [Slot(p, [k], p.dim() >= 2, False) for k, net in enumerate(self.nets) for p in net.parameters()]

    def matrix_slots(self):
        return [s for s in self.slots() if s.matrix]

    def zero_grad_(self):
        for p in self.parameters():
            p.grad = None

    def forward(self, x, gens=None):
        outs, saved = [], torch.get_rng_state()
        for k, net in enumerate(self.nets):
            if self.training:
                torch.set_rng_state(self.rng[k])
            outs.append(net(x[k]))
            if self.training:
                self.rng[k] = torch.get_rng_state()
        torch.set_rng_state(saved)
        return torch.stack(outs)

    def trial_state(self, k: int) -> dict:
        return {n: t.detach().clone() for n, t in self.nets[k].state_dict().items()}

    def load_trial_state(self, k: int, state: dict):
        self.nets[k].load_state_dict(state)
