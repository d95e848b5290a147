"""A pack's parameters as the optimiser sees them (Slot), each trial's own random streams, and
the PB-10 weight initialisations: shared by the built-in models and custom ones."""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from alchemist.errors import UserError

INITS = ("kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform", "normal",
         "scaled", "torch")


class Slot(NamedTuple):
    """A parameter as the optimiser sees it: stacked (K, ...) or one trial's own tensor."""
    param: torch.Tensor
    owners: list[int]
    matrix: bool      # a weight matrix / conv kernel (L1, update ratios); not a bias or BN scale
    stacked: bool
    name: str = ""    # the parameter's name (what `freeze` / `lr_groups` patterns match)


class SlotModule(nn.Module):
    """What the pack optimiser and engine ask of a model besides `slots()` (the parameters as
    Slots): its weight matrices, and clearing every gradient. Shared by the models that keep
    one tensor per parameter (custom, recurrent); PackNet keeps all of them in one buffer."""

    def matrix_slots(self):
        """The slots that are weight matrices or conv kernels (what L1 and update ratios use)."""
        return [s for s in self.slots() if s.matrix]

    def zero_grad_(self):
        """Clear every parameter's gradient (set to None); returns None."""
        for p in self.parameters():
            p.grad = None


STREAMS = ("init", "shuffle", "dropout", "augment")


def trial_generator(cfg: dict, stream: str, device="cpu") -> torch.Generator:
    """A trial's own random stream for one purpose (PB-6): independent of its pack-mates."""
    return torch.Generator(device=device).manual_seed(int(cfg["seed"]) * len(STREAMS) + STREAMS.index(stream))


def init_weight_(w: torch.Tensor, fan_in: int, fan_out: int, cfg: dict, gen) -> torch.Tensor:
    """PB-10 initialisations for one trial's weight, with explicit fans (layout-independent)."""
    kind = cfg["init"]
    act = cfg["activation"]
    gain = nn.init.calculate_gain("relu" if act == "gelu" else act)
    fan = fan_in if cfg.get("init_mode", "fan_in") == "fan_in" else fan_out
    with torch.no_grad():
        if kind == "kaiming_normal":
            return w.normal_(0.0, gain / math.sqrt(fan), generator=gen)
        if kind == "kaiming_uniform":
            bound = gain * math.sqrt(3.0 / fan)
            return w.uniform_(-bound, bound, generator=gen)
        if kind == "xavier_normal":
            return w.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)), generator=gen)
        if kind == "xavier_uniform":
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            return w.uniform_(-bound, bound, generator=gen)
        if kind == "normal":
            return w.normal_(0.0, 0.02, generator=gen)
        if kind == "scaled":
            return w.normal_(0.0, 1.0, generator=gen).mul_(cfg["init_scale"] / math.sqrt(fan_in))
        if kind == "torch":   # nn.Linear's default: kaiming_uniform(a=sqrt(5)) = U(±1/sqrt(fan_in))
            return w.uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), generator=gen)
    raise UserError(f"unknown init {kind!r}; choose one of {', '.join(INITS)}")
