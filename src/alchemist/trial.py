"""What a trial is: its default settings, its id, which settings a pack may vary, and a trial
spec completed with the defaults (`complete_trials`). The ONE definition of a trial.

This module is shared by the search (which plans trials) and the engine (which trains them),
so it imports neither torch nor optuna. Ids derive from canonical JSON, never from positions.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from alchemist.errors import UserError

#: Every setting the training engine understands, with its default. The `train:` section of
#: config/config.yaml overrides these; a search stage's sampled values override those (PB-25).
TRIAL_DEFAULTS: dict[str, Any] = {
    # --- model (PB-8, PB-9, PB-10, PB-19, PB-20) ---
    "model": "mlp",               # mlp | resmlp | cnn | "package.module:callable"
    "hidden": [128],              # hidden widths, or "auto" (PB-8 width rule)
    "auto_width": "mean",         # mean | two_thirds: the PB-8 rule used when hidden == "auto"
    "activation": "relu",         # relu | leaky_relu | tanh | sigmoid | gelu
    "dropout": 0.0,               # PB-19
    "batch_norm": False,          # PB-20
    "cnn_channels": [16, 32],     # conv widths of the small CNN (image-shaped inputs)
    "init": "kaiming_normal",     # kaiming_normal | kaiming_uniform | xavier_normal | xavier_uniform | normal | scaled | torch
    "init_mode": "fan_in",        # fan_in | fan_out (kaiming)
    "init_scale": 1.0,            # for init == scaled: init_scale / sqrt(fan_in) * randn
    "forget_bias": 1.0,           # lstm: initial forget-gate bias (PB-16)
    # --- transfer learning (PB-12, alchemist.train.transfer) ---
    "init_from": None,            # weights file every trial starts from (model.pt or a state_dict)
    "freeze": {},                 # {name pattern: epochs} frozen for a trial's first epochs (null: always)
    "lr_groups": {},              # {name pattern: factor}: differential learning rates
    # --- loss (PB-7, PB-4) ---
    "loss": "auto",               # auto (by task) | cross_entropy | bce | mse
    "rebalance": "prep",          # prep (use prep.json plan) | none
    # --- optimiser (PB-11, PB-12, PB-20) ---
    "optimizer": "adam",          # sgd | adam | adamw | adagrad | adadelta | rmsprop
    "lr": 1.0e-3,
    "lr_reference_batch": None,   # if set: lr * batch_size / lr_reference_batch (PB-12)
    "weight_decay": 0.0,          # L2 (PB-20)
    "l1": 0.0,                    # L1 penalty (PB-20)
    "momentum": 0.0,              # sgd, rmsprop (torch default 0)
    "nesterov": False,            # sgd
    "beta1": 0.9,                 # adam, adamw
    "beta2": 0.999,               # adam, adamw
    # --- schedule (PB-14) ---
    "schedule": "constant",       # constant | step | multistep | exponential | cosine | cosine_restarts | plateau
    "warmup_epochs": 0,           # linear warm-up, composable with any schedule
    "step_size": 10,              # step
    "gamma": 0.5,                 # step, multistep, exponential
    "milestones": [30, 60],       # multistep
    "t_0": 10,                    # cosine_restarts
    "t_mult": 1,                  # cosine_restarts
    "eta_min": 0.0,               # cosine, cosine_restarts
    "schedule_epochs": None,      # epochs a cosine schedule spans; None = epochs (halving: last rung)
    "plateau_factor": 0.5,        # plateau: divide by 2 (0.5) or 5 (0.2)
    "plateau_patience": 5,        # plateau
    # --- loop (PB-6, PB-15, PB-16, PB-17, PB-21, PB-5) ---
    "batch_size": 64,
    "epochs": 30,
    "grad_accum": 1,              # PB-17
    "grad_clip": None,            # global-norm threshold, e.g. 5, 10, 15 (PB-16)
    "early_stopping": True,       # PB-21
    "monitor": "val_loss",        # val_loss | val_metric
    "patience": 10,
    "min_delta": 0.0,
    "augment": False,             # PB-5 (image-shaped inputs only)
    "aug_shift": 1,               # max pixel shift
    "aug_flip": False,            # horizontal flips (off: digits are not symmetric)
    "aug_noise": 0.0,             # std of Gaussian noise added to inputs
    "aug_rotate": 0.0,            # max rotation in degrees (small: 5-15)
    "seed": 0,                    # init, shuffling order, dropout masks, augmentation
    # --- execution ---
    "device": "auto",             # auto (CUDA when present) | cpu | cuda | cuda:N
    "bf16": False,                # bf16 autocast on GPU
    "checkpoint_every": 1,        # epochs between resume checkpoints
}

#: Settings that may differ between trials trained together in one pack. Everything else is
#: shared inside a pack (architecture, optimiser kind, schedule kind, batch size, epochs, data).
PER_TRIAL_KEYS: frozenset[str] = frozenset({
    "lr", "lr_reference_batch", "weight_decay", "l1", "momentum", "nesterov", "beta1", "beta2",
    "dropout", "init_scale", "grad_clip", "seed",
    "warmup_epochs", "step_size", "gamma", "milestones", "t_0", "t_mult", "eta_min",
    "schedule_epochs", "plateau_factor", "plateau_patience",
    "early_stopping", "monitor", "patience", "min_delta", "aug_noise", "aug_shift",
    "checkpoint_every", "aug_rotate", "forget_bias", "freeze", "lr_groups",
})

#: Settings added after trials were first recorded: they enter a trial's id (and pack key) only
#: when set to something other than their default, so adding a setting never renames the trials
#: of earlier results (their MLflow runs, their folders).
LATER_KEYS: frozenset[str] = frozenset({"aug_rotate", "forget_bias", "init_from", "freeze", "lr_groups"})

#: Keys that describe a trial's place rather than its settings; not hashed into pack keys.
BOOKKEEPING_KEYS = frozenset({"trial_id", "stage"})


def canonical_json(obj: Any) -> str:
    """The one serialisation used for ids and Snakemake params: sorted keys, no spaces."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def short_hash(obj: Any, length: int = 12) -> str:
    """The first `length` hex digits of the sha256 of `obj`'s canonical JSON."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def identity(params: Mapping[str, Any]) -> dict:
    """The settings that identify a trial: all but `trial_id`, and LATER_KEYS at their default."""
    return {k: v for k, v in params.items()
            if k != "trial_id" and not (k in LATER_KEYS and v == TRIAL_DEFAULTS[k])}


def trial_id(params: Mapping[str, Any]) -> str:
    """Id of a trial: hash of its canonical settings (alchemist.trial.identity)."""
    return short_hash(identity(params))


def make_trial(base: Mapping[str, Any], overrides: Mapping[str, Any], **place: Any) -> dict:
    """Defaults < base (config `train:`) < overrides (sampled values) < place (stage, data)."""
    unknown = set(overrides) - set(TRIAL_DEFAULTS)
    if unknown:
        raise KeyError(f"unknown training setting(s): {', '.join(sorted(unknown))}")
    trial = {**TRIAL_DEFAULTS, **base, **overrides, **place}
    trial["trial_id"] = trial_id(trial)
    return trial


def pack_key(trial: Mapping[str, Any]) -> str:
    """Trials with the same pack key can be trained together as one vectorised job."""
    shared = {k: v for k, v in identity(trial).items()
              if k not in PER_TRIAL_KEYS and k not in BOOKKEEPING_KEYS}
    return short_hash(shared)


def complete_trials(raw: list[dict]) -> list[dict]:
    """Defaults under each config; an id where none is given; one pack key for all (or UserError)."""
    if not raw:
        raise UserError("a pack needs at least one trial")
    trials = []
    for t in raw:
        unknown = set(t) - set(TRIAL_DEFAULTS) - BOOKKEEPING_KEYS - {"data"}
        if unknown:
            raise UserError(f"unknown training setting(s): {', '.join(sorted(unknown))}")
        full = {**TRIAL_DEFAULTS, "data": "train", **t}
        full.setdefault("trial_id", trial_id(full))
        trials.append(full)
    if len({pack_key(t) for t in trials}) > 1:
        raise UserError("these trials cannot share a pack: they differ in a shared setting "
                        "(architecture, optimiser, schedule kind, batch size, epochs or data)")
    return trials
