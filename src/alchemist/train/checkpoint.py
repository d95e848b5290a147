"""Resume state of a pack: one atomic file holding everything a bitwise-identical resume needs.

The checkpoint is pack-level (`<out_dir>/_checkpoints/<pack_id>.pt`), written atomically (temp
file, fsync, os.replace), so a SIGKILL at any moment leaves either the old or the new file; at
most every `checkpoint_every` epochs and as often as it pays (Throttle), always on SIGTERM. It
holds the model and optimiser tensors, every scheduler, every per-trial generator (shuffle,
dropout, augmentation; custom models' RNG states), early-stopping state with the best weights,
the metrics rows so far, and, after SIGTERM, the half-finished epoch (its order, position and
running sums). It is used only when its trial configs equal the pack's.

Continuation across packs (successive halving, where rung r trains the same trial ids to more
epochs in other packs): every trial that ends completed or early stopped leaves
`<trial_dir>/state.pt`, its snapshot (PackTrainer.snapshot) keyed by the epoch budget it was
trained to. A later pack whose config for the trial differs only in `epochs` starts the trial from
the largest budget below its own (an early-stopped trial stays stopped). The file keeps one
snapshot per budget along the trial's current history, so re-running one rung starts from the
same point as the first time.

Both files carry FORMAT: state written by an engine whose saved layout differs (say, a job killed
before an upgrade and re-run after it) is not loaded; the pack or trial starts afresh instead.
"""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import torch

from alchemist.atomic import replacing
from alchemist.trial import short_hash


FORMAT = 4   # the saved state's layout; 2: one optimiser slot per parameter, 16-bit dropout draws;
             # 3: schedules' LR holders saved as their group (no torch.optim.SGD);
             # 4: an epoch's running score is per-class counts (3, K, C) for classification


def pack_fingerprint(trials: list[dict]) -> str:
    """The pack's identity for its checkpoint (settings and format): a checkpoint of another
    pack is never resumed."""
    return short_hash([FORMAT] + [{k: v for k, v in t.items() if k != "checkpoint_every"} for t in trials], 16)


def trainer_state(tr) -> dict:
    """Everything a PackTrainer needs to go on after a kill: bookkeeping, weights, optimiser,
    schedule and every random generator."""
    return {
        "epoch": tr.epoch, "status": tr.status, "rows": tr.rows, "best": tr.best,
        "trial_epoch": tr.trial_epoch, "start": tr.start, "cont": tr.cont,
        "diverged_epoch": tr.diverged_epoch, "init_loss": tr.init_loss, "pending": tr.pending,
        "model": tr.model.state_dict(), "custom_rng": getattr(tr.model, "rng", None),
        "opt": tr.opt.state_dict(), "sched": tr.sched.state_dict(),
        "gens": {name: [g.get_state() for g in gens] for name, gens in tr.gens.items()},
    }


def restore(tr, state: dict) -> None:
    """Put a trainer_state back into a freshly built PackTrainer (tensors onto its device)."""
    for key in ("epoch", "status", "rows", "best", "diverged_epoch", "init_loss", "pending",
                "trial_epoch", "start", "cont"):
        setattr(tr, key, state[key])
    if tr.pending is not None:
        tr.pending = {k: v.to(tr.device) if torch.is_tensor(v) else v for k, v in tr.pending.items()}
    tr.model.load_state_dict(state["model"])
    if state["custom_rng"] is not None:
        tr.model.rng = state["custom_rng"]
    tr.opt.load_state_dict(state["opt"])
    tr.sched.load_state_dict(state["sched"])
    for name, gens in tr.gens.items():
        for g, s in zip(gens, state["gens"][name]):
            g.set_state(s)
    tr.set_lr()


class Throttle:
    """Checkpoints as often as they pay: an offered save is declined while the time since the
    last one is under RATIO x what that one took to write, so saving costs at most ~1/RATIO of
    the training time whatever the model's size (a small net's epoch can be as quick as its
    fsync'd checkpoint). A forced save (SIGTERM) is always written."""

    RATIO = 10.0

    def __init__(self, save):
        self.save, self.cost, self.last = save, 0.0, None

    def __call__(self, trainer, force: bool = False) -> bool:
        now = time.perf_counter()
        if not force and self.last is not None and now - self.last < self.RATIO * self.cost:
            return False
        try:
            self.save(trainer)
        except (OSError, RuntimeError) as err:      # a full disk, a vanished mount: say so, go on
            print(f"alchemist: warning: checkpoint not written ({err}); training goes on, a kill "
                  "now loses the epochs since the last checkpoint", file=sys.stderr, flush=True)
            if force:
                raise
            return False
        self.last = time.perf_counter()
        self.cost = self.last - now
        return True


def save_atomic(obj, path: str | Path) -> None:
    """torch.save into a temporary file, fsynced, then renamed over `path`."""
    with replacing(path, fsync=True) as tmp:
        torch.save(obj, tmp)


def discard(path: str | Path) -> None:
    """Remove a finished pack's checkpoint — only its own file: the `_checkpoints/` folder is
    shared by the packs of a stage, which may be saving into it right now (SLURM, several
    GPUs), so it is never removed."""
    Path(path).unlink(missing_ok=True)


def load(path: str | Path, fingerprint: str) -> dict | None:
    """The saved state if `path` exists and belongs to this pack, else None."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:        # a foreign or damaged file: start fresh
        return None
    return obj["state"] if obj.get("fingerprint") == fingerprint else None


CONTINUATION = "state.pt"
NOT_COMPARED = ("epochs", "checkpoint_every")


def _same_trial(a: dict, b: dict) -> bool:
    drop = lambda c: {k: v for k, v in c.items() if k not in NOT_COMPARED}  # noqa: E731
    return drop(a) == drop(b)


def _snapshots(path: Path) -> dict[int, dict]:
    if not path.exists():
        return {}
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:        # damaged or foreign: no continuation
        return {}
    return saved["snapshots"] if isinstance(saved, dict) and saved.get("format") == FORMAT else {}


def continuation(trial_dir: str | Path, trial: dict) -> dict | None:
    """The snapshot to continue `trial` from: same config but `epochs`, the largest budget below
    the trial's epochs; None to train from scratch."""
    snaps = _snapshots(Path(trial_dir) / CONTINUATION)
    fits = [b for b, s in snaps.items() if b < int(trial["epochs"]) and _same_trial(s["config"], trial)]
    return snaps[max(fits)] if fits else None


def save_continuation(trial_dir: str | Path, trial: dict, start: int, snap: dict | None) -> None:
    """Keep the snapshots this run started from (budgets <= start) and add the new one; budgets
    above `start` belonged to an older history of the trial and go."""
    path = Path(trial_dir) / CONTINUATION
    keep = {b: s for b, s in _snapshots(path).items() if b <= start and _same_trial(s["config"], trial)}
    if snap is not None:
        keep[snap["budget"]] = snap
    if keep:
        save_atomic({"format": FORMAT, "snapshots": keep}, path)
    else:
        path.unlink(missing_ok=True)


class StopOnSigterm:
    """While active, SIGTERM (how SLURM pre-empts) sets `trainer.stop_requested`; the loop then
    checkpoints at the next optimiser step and raises Preempted."""

    def __init__(self, trainer):
        self.trainer, self.previous = trainer, None

    def __enter__(self):
        def handler(signum, frame):
            self.trainer.stop_requested = True
        self.previous = signal.signal(signal.SIGTERM, handler)
        return self

    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, self.previous)
        return False
