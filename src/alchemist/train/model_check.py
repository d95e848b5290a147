"""Every model a run will train, checked before any job runs (the Snakefile's parse-time check,
dag.check_or_exit): built once, on CPU, on the shapes of the data prep will write (inputs,
classes, image or sequence shape), so a mistake in a model is one line naming the setting —
not a traceback in every pack job after plan.json and the trial configs were written.

Checked: the loss fits the task; the model builds (a factory that raises, takes the wrong
arguments or returns no nn.Module; a `cnn` or `lstm` on a table); its weights are finite (also
after `init_from`: a missing, unreadable or NaN file, or one matching no tensor); a forward pass
of two rows runs (a factory built for another input width) and gives one output per class (or
one). The models checked: `train:` and every stage whose `set:` or space changes the model's
shape (model, hidden, cnn_channels, init_from, …), each once. torch is imported only when a
check runs (the Snakefile caches a passed check).
"""
from __future__ import annotations

import contextlib
import copy
import io
import sys

from alchemist.errors import UserError

#: what the built-in models read of a trial; a custom factory gets them too, and they matter
#: only when it reads them (the engine itself applies init, init_mode, init_scale to its layers)
MODEL_SETTINGS = ("hidden", "auto_width", "activation", "dropout", "batch_norm", "cnn_channels",
                  "forget_bias")
#: settings that change which model is built (a stage's `set:` or a space `choice` of them)
SHAPING = ("model", "hidden", "auto_width", "activation", "batch_norm", "cnn_channels", "loss",
           "init", "init_from", "forget_bias")


def shapes_of(manifest: dict) -> dict:
    """What a model needs of prep.json: task, classes, inputs, image or sequence shape."""
    return {"task": manifest["task"], "n_classes": int(manifest.get("n_classes", 1)),
            "n_inputs": len(manifest["features"]), "image_shape": manifest.get("image_shape"),
            "sequence": manifest.get("sequence"),
            "rows": {k: int(v.get("rows", 0)) for k, v in (manifest.get("splits") or {}).items()}}


CONV_MODELS = ("cnn", "rescnn")
NEEDS_HIDDEN = ("resmlp", "lstm", "gru")     # mlp and cnn without hidden layers: a linear head
MIN_SIDE = 3            # a 3×3 kernel on a smaller image sees mostly padding


def check_model(trial: dict, shapes: dict, where: str = "train") -> frozenset | None:
    """UserError (one line, naming `where`) when this trial's model cannot train on the data;
    else the settings a custom factory read (None for the built-in models)."""
    import torch

    from alchemist.train.losses import loss_kind, n_outputs
    from alchemist.train.models import build_model
    from alchemist.train.transfer import load_weights

    task = shapes["task"]
    loss = loss_kind(trial, task)
    n_in, n_out = shapes["n_inputs"], n_outputs(task, loss, shapes["n_classes"])
    name = f"{where}.model {trial['model']!r}"
    if trial["model"] in NEEDS_HIDDEN and not trial.get("hidden"):
        raise UserError(f"{where}.hidden: {trial.get('hidden')!r} gives model {trial['model']!r} no "
                        "layer; it needs at least one width, e.g. [64]")
    image = shapes["image_shape"]
    if trial["model"] in CONV_MODELS and image and min(image[1:]) < MIN_SIDE:
        raise UserError(f"{name}: the images are {image[1]}×{image[2]} pixels, under the {MIN_SIDE}×"
                        f"{MIN_SIDE} its 3×3 convolutions need; resize them (data.image_size) or use "
                        "model 'mlp'")
    try:     # the build's own notes (vectorised or not) are for the training jobs' logs
        with torch.random.fork_rng(devices=[]), contextlib.redirect_stderr(io.StringIO()):
            model = build_model([trial], n_in, n_out, shapes["image_shape"], "cpu", shapes["sequence"])
            if trial.get("init_from"):
                load_weights(model, 1, trial["init_from"])
    except UserError as err:
        raise UserError(f"{where}: {err}") if not str(err).startswith(("train.", where)) else err
    except Exception as err:                    # noqa: BLE001 - a model that does not build: one line
        raise UserError(f"{name}: building it failed: {type(err).__name__}: {_first_line(err)}") from None
    bad = [n for n, t in model.trial_state(0).items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        source = f" after init_from {trial['init_from']}" if trial.get("init_from") else ""
        raise UserError(f"{name}: non-finite (NaN or Inf) weights{source}: {', '.join(bad[:5])}")
    x = torch.zeros(1, 2, n_in)
    if shapes["sequence"]:
        x = x + 1                               # token id 1: a real token, not padding
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except Exception as err:                    # noqa: BLE001 - the user's forward: one line
        raise UserError(f"{name}: a forward pass on 2 rows of {n_in} inputs failed (built for another "
                        f"input width?): {type(err).__name__}: {_first_line(err)}") from None
    if tuple(out.shape) != (1, 2, n_out):
        got = tuple(out.shape[1:]) if out.dim() >= 2 else tuple(out.shape)
        raise UserError(f"{name}: returns outputs of shape {got} for 2 rows; the {task} task needs "
                        f"(2, {n_out}) — one {'logit per class' if n_out > 1 else 'value'} a row")
    return getattr(model, "settings_read", None)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [""])[0][:200]


def models_to_check(base: dict, space: dict, stages: list) -> list[tuple[str, dict]]:
    """(where, trial) for `train:` (`base`), each space choice of a shaping setting, and each stage
    whose `set:` shapes the model — each distinct model once."""
    from alchemist.trial import complete_trials

    variants = [("train", {})]
    for key, spec in (space or {}).items():
        if key in SHAPING and isinstance(spec, dict):
            variants += [(f"search.space.{key}", {key: v}) for v in spec.get("choice") or spec.get("grid") or []]
    for stage in stages or []:
        fixed = {k: v for k, v in (stage.get("set") or {}).items() if k in SHAPING}
        if fixed:
            variants.append((f"search.stages.{stage.get('name')}.set", fixed))
    seen, out = set(), []
    for where, change in variants:
        trial = complete_trials([{k: v for k, v in {**base, **change}.items() if k != "trial_id"}])[0]
        key = repr(sorted((k, repr(trial.get(k))) for k in SHAPING))
        if key not in seen:
            seen.add(key)
            out.append((where, copy.deepcopy(trial)))
    return out


def check_models(base: dict, space: dict, stages: list, shapes: dict) -> list[str]:
    """Check every model of a config (train:, the search space, the stages' `set:`) against the
    data prep will write (`shapes_of` its manifest); UserError: one line. Returns the searched
    model settings no model of the run reads (a custom factory that ignores `dropout`): the
    search leaves them out (search.ignore)."""
    read: set[str] = set()
    custom_only = True
    splits = {s.get("data", "train") for s in stages or [] if s.get("kind") != "select"} or {"train"}
    for where, trial in models_to_check(base, space, stages):
        batch = int(trial["batch_size"]) * int(trial["grad_accum"])
        short = {k: n for k, n in (shapes.get("rows") or {}).items() if k in splits and 0 < n < batch}
        for split, n in sorted(short.items()):
            print(f"alchemist: warning: {where}.batch_size {trial['batch_size']} (× grad_accum "
                  f"{trial['grad_accum']}) is more than the {split} split's {n} rows: every epoch "
                  "is one batch of all of them", file=sys.stderr)
        got = check_model(trial, shapes, where)
        if got is None:
            custom_only = False
        else:
            read |= got
    searched = [k for k, v in (space or {}).items() if isinstance(v, dict)]
    return sorted(k for k in searched if k in MODEL_SETTINGS and k not in read) if custom_only else []
