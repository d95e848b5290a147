"""Transfer learning (PB-12): start from saved weights, freeze parameter groups on a schedule,
and give groups their own learning rates — for every model kind, K trials at once.

* `init_from: <file>` — what `torch.save` wrote: an alchemist trial's `model.pt`, or a plain
  state_dict (name → tensor; a custom nn.Module's `state_dict()`, the names its
  `named_parameters()` gives). Every trial of the pack starts from it: each tensor whose name
  and shape match is copied in; one of another shape (a new head for other classes) keeps its
  fresh initialisation and is named in the log; a file that matches nothing is an error.
* `freeze: {pattern: epochs}` — parameters whose name matches the glob (fnmatch) stay frozen for
  the trial's first `epochs` epochs (null: throughout), then train: gradual unfreezing.
  A frozen parameter is left out of the update (and its optimiser state untouched), and its
  gradient is zeroed first, so clipping and the update ratios (PB-16, PB-18) see only the
  trained ones (what `requires_grad=False` gives a single model). BatchNorm running statistics
  still follow the batches in training mode, as in torch.
* `lr_groups: {pattern: factor}` — differential learning rates: matching parameters learn at
  lr × factor (first matching pattern wins; e.g. {"features.*": 0.1} for a pretrained backbone).

Parameter names: the built-in nets' `c0_w`, `l0_w`, `out_w`, `out_b`, … (`r` for residual
blocks); `emb`, `w_ih`, `w_hh`, `b`, `out_w`, `out_b` for lstm/gru; a custom module's own names.
A pattern that matches no parameter is an error naming the names there are.
"""
from __future__ import annotations

import fnmatch
from pathlib import Path

import torch

from alchemist.errors import UserError


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The file's state_dict (name → CPU tensor), from a model.pt, a state_dict or a whole module;
    a UserError when there is none."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"train.init_from: file not found: {path}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:                    # noqa: BLE001 - a user's file: one line
        raise UserError(f"train.init_from: cannot read {path}: {type(err).__name__}: {err}") from None
    if isinstance(saved, torch.nn.Module):
        saved = saved.state_dict()
    if isinstance(saved, dict) and isinstance(saved.get("state"), dict):   # an alchemist model.pt
        saved = saved["state"]
    if not isinstance(saved, dict) or not all(isinstance(v, torch.Tensor) for v in saved.values()):
        raise UserError(f"train.init_from: {path} holds no state_dict (name → tensor)")
    return saved


def load_weights(model, K: int, path: str | Path) -> list[str]:
    """Copy the file's matching tensors into every trial; the log lines saying what was kept."""
    saved = read_weights(path)
    current = model.trial_state(0)
    same = {n: t for n, t in saved.items() if n in current and tuple(t.shape) == tuple(current[n].shape)}
    if not same:
        raise UserError(f"train.init_from: no tensor of {path} fits the model (its names: "
                        f"{', '.join(list(current)[:8])}; the file's: {', '.join(list(saved)[:8])})")
    for k in range(K):
        state = model.trial_state(k)
        state.update({n: t.to(state[n].device, state[n].dtype) for n, t in same.items()})
        model.load_trial_state(k, state)
    fresh = [n for n in current if n not in same]
    lines = [f"init_from {path}: loaded {len(same)} of {len(current)} tensors"]
    if fresh:
        lines.append("kept fresh (not in the file, or another shape): " + ", ".join(fresh[:20]))
    return lines


class ParameterGroups:
    """Each slot's LR factor per trial, and which trials keep it frozen at a given epoch."""

    def __init__(self, trials: list[dict], slots):
        self.slots, self.K = slots, len(trials)
        names = [s.name for s in slots]
        for t in trials:
            for key in ("freeze", "lr_groups"):
                for pattern in t[key]:
                    if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                        raise UserError(f"train.{key}: pattern {pattern!r} matches no parameter "
                                        f"(names: {', '.join(dict.fromkeys(names))})")
        self.factor = [[_first(t["lr_groups"], s.name, 1.0) for t in trials] for s in slots]
        self.until = [[_frozen_until(t["freeze"], s.name) for t in trials] for s in slots]
        self.active = any(t["freeze"] or t["lr_groups"] for t in trials)
        self.keep, self.masking = [None] * len(slots), False

    def at(self, epochs_done: list[int]) -> list[list[float]] | None:
        """Per slot, per owner: the LR factor, 0 while frozen (None: no groups, all 1). Also
        decides which gradients `mask_grads` zeroes until the next call."""
        if not self.active:
            return None
        mult = []
        for s, factors, until in zip(self.slots, self.factor, self.until):
            owners = range(self.K) if s.stacked else s.owners
            mult.append([0.0 if until[k] is not None and epochs_done[k] < until[k] else factors[k]
                         for k in owners])
        self.keep = [torch.tensor([float(m != 0) for m in ms], device=s.param.device) if 0 in ms else None
                     for s, ms in zip(self.slots, mult)]
        self.masking = any(k is not None for k in self.keep)
        return mult

    def mask_grads(self) -> None:
        """Zero the gradients of the parameters `at` last found frozen, per trial; returns None."""
        if not self.masking:                    # the training step's common case: nothing frozen
            return
        for s, keep in zip(self.slots, self.keep):
            if keep is not None and s.param.grad is not None:
                grad = s.param.grad if s.stacked else s.param.grad.unsqueeze(0)
                grad.mul_(keep.view(-1, *[1] * (grad.dim() - 1)))


def _first(mapping: dict, name: str, default):
    return next((v for p, v in mapping.items() if fnmatch.fnmatchcase(name, p)), default)


def _frozen_until(freeze: dict, name: str) -> float | None:
    for pattern, epochs in freeze.items():
        if fnmatch.fnmatchcase(name, pattern):
            return float("inf") if epochs is None else float(epochs)
    return None
