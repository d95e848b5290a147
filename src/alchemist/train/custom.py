"""A user's model, `package.module:callable(n_inputs, n_outputs, config)`, in a pack. The K
instances are built one by one, each initialised from its trial's seed and init setting, then:

* `VmapPack` (the default): their parameters stacked (torch.func.stack_module_state) and the K
  forward passes run as ONE vectorised computation (torch.vmap over functional_call); the
  stacked (K, ...) tensors are the per-trial optimiser's slots, exactly as for the built-in nets;
* `CustomPack` (the fallback, named in the job's log): K instances run one after another, each
  with its own dropout stream (torch's global RNG state, saved per trial), so pack == solo holds.
  Used when vmap cannot give the solo result: BatchNorm (running statistics are updated in place),
  dropout or other draws from torch's global RNG (one vmapped draw is not K solo draws), trials
  that build different modules, or a forward that vmap refuses.
"""
from __future__ import annotations

import copy
import importlib
import inspect
import sys

import torch
from torch import nn

from alchemist.errors import UserError
from alchemist.train.params import Slot, SlotModule, init_weight_, trial_generator


def build_custom(trials: list[dict], n_in: int, n_out: int, image_shape=None) -> nn.Module:
    """The pack of a custom model: vectorised when it can be, else the loop (said on stderr)."""
    read: set[str] = set()
    nets, rng = instantiate(trials, n_in, n_out, image_shape, read)
    reason = why_not_vmap(nets, n_in)
    if reason is None:
        print(f"alchemist: model {trials[0]['model']}: {len(nets)} trials vectorised as one model "
              "(torch.func vmap)", file=sys.stderr, flush=True)
        pack = VmapPack(nets)
    else:
        print(f"alchemist: model {trials[0]['model']}: {len(nets)} trials run one after another, not "
              f"vectorised ({reason})", file=sys.stderr, flush=True)
        pack = CustomPack(nets, rng)
    pack.settings_read = frozenset(read)      # which trial settings the factory looked at
    return pack


def instantiate(trials: list[dict], n_in: int, n_out: int, image_shape=None, read: set | None = None):
    """K instances and each one's RNG state after construction (its dropout stream); `read`
    collects the settings the factory read."""
    module_name, _, attr = trials[0]["model"].partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise UserError(f"cannot import model {trials[0]['model']!r}: {err}") from err
    where = f"train.model {trials[0]['model']!r}"
    try:
        inspect.signature(factory).bind(n_in, n_out, {})
    except TypeError:
        raise UserError(f"{where}: the factory must accept (n_inputs, n_outputs, config)") from None
    except ValueError:                          # no signature to read (a builtin): call it anyway
        pass
    nets, rng = [], []
    read = set() if read is None else read
    for t in trials:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(t["seed"]))
            settings = ReadKeys({**t, "image_shape": image_shape})
            try:
                net = factory(n_in, n_out, settings)
            except Exception as err:            # noqa: BLE001 - a user's code: one line
                raise UserError(f"{where}: the factory raised {type(err).__name__}: "
                                f"{str(err).splitlines()[0] if str(err) else ''}") from None
            rng.append(torch.get_rng_state())   # the trial's own dropout stream
        read |= settings.read
        if not isinstance(net, nn.Module):
            raise UserError(f"{where}: the factory returned {type(net).__name__}, not a torch.nn.Module")
        if t["init"] != "torch":
            gen = trial_generator(t, "init")
            for m in net.modules():
                if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
                    init_weight_(m.weight.data, fan_in, fan_out, t, gen)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        nets.append(net)
    return nets, rng


class ReadKeys(dict):
    """The settings a factory gets, noting which keys it reads: the search leaves out the model
    settings it never reads (alchemist.train.model_check)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        """dict.get, noting `key` as read whether or not it is there."""
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)


def why_not_vmap(nets: list[nn.Module], n_in: int) -> str | None:
    """None when torch.vmap gives each trial its solo result, else why not."""
    first = nets[0]
    if any(repr(n) != repr(first) for n in nets[1:]):
        return "the trials build different modules"
    for m in first.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            return "BatchNorm updates its running statistics in place"
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            return "dropout draws from torch's global RNG: one vmapped draw is not K solo draws"
    try:
        probe = VmapPack([copy.deepcopy(n) for n in nets[:2]])
        with torch.no_grad():
            probe(torch.zeros(probe.K, 2, n_in))
    except Exception as err:                    # noqa: BLE001 - any refusal means: loop
        return f"torch.vmap: {type(err).__name__}: {str(err).splitlines()[0][:120]}"
    return None


class VmapPack(SlotModule):
    """K instances of one architecture as one vectorised model (torch.func)."""

    def __init__(self, nets: list[nn.Module]):
        super().__init__()
        from torch.func import stack_module_state

        self.K = len(nets)
        params, buffers = stack_module_state(nets)
        self.names, self.buffer_names = list(params), list(buffers)
        self.stacked = nn.ParameterList([nn.Parameter(params[n].detach()) for n in self.names])
        for i, n in enumerate(self.buffer_names):
            self.register_buffer(f"buffer{i}", buffers[n])
        object.__setattr__(self, "base", copy.deepcopy(nets[0]).to("meta"))  # not a submodule

    def forward(self, x, gens=None):
        """Outputs (K, B, n_out) for x (K, B, n_in): trial k's weights on x[k], all K in one vmapped
        call; `gens` is ignored."""
        from torch.func import functional_call

        self.base.train(self.training)
        params = dict(zip(self.names, self.stacked))
        buffers = {n: getattr(self, f"buffer{i}") for i, n in enumerate(self.buffer_names)}
        return torch.vmap(lambda p, b, xk: functional_call(self.base, (p, b), (xk,)))(params, buffers, x)

    def slots(self):
        """Every stacked (K, ...) parameter as a Slot owned by all K trials; a matrix when a trial's
        tensor has 2+ dims."""
        return [Slot(p, list(range(self.K)), p.dim() >= 3, True, n) for n, p in zip(self.names, self.stacked)]

    def _tensors(self) -> dict[str, torch.Tensor]:
        out = dict(zip(self.names, self.stacked))
        out.update({n: getattr(self, f"buffer{i}") for i, n in enumerate(self.buffer_names)})
        return out

    def trial_state(self, k: int) -> dict:
        """Trial k's parameters and buffers by the module's own names, detached copies without the K axis."""
        return {n: t[k].detach().clone() for n, t in self._tensors().items()}

    def load_trial_state(self, k: int, state: dict):
        """Overwrite trial k's parameters and buffers with a trial_state() dict; returns None."""
        with torch.no_grad():
            for n, t in self._tensors().items():
                t[k].copy_(state[n])


class CustomPack(SlotModule):
    """K instances of a user model run one after another (the fallback; see the module doc)."""

    def __init__(self, nets: list[nn.Module], rng: list[torch.Tensor]):
        super().__init__()
        self.K, self.nets, self.rng = len(nets), nn.ModuleList(nets), list(rng)

    def slots(self):
        """Each instance's parameters as unstacked Slots owned by its trial ([k]); a matrix when 2+ dims."""
        return [Slot(p, [k], p.dim() >= 2, False, n) for k, net in enumerate(self.nets)
                for n, p in net.named_parameters()]

    def forward(self, x, gens=None):
        """Outputs (K, B, n_out): instance k on x[k], in training mode drawing from (and advancing) trial
        k's own RNG state; torch's global RNG is left as it was. `gens` is ignored."""
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
        """Instance k's state_dict (parameters and buffers such as BatchNorm statistics), detached copies."""
        return {n: t.detach().clone() for n, t in self.nets[k].state_dict().items()}

    def load_trial_state(self, k: int, state: dict):
        """Load a trial_state() dict into instance k (strict load_state_dict); returns None."""
        self.nets[k].load_state_dict(state)
