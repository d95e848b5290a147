"""The training engine: K trials of one architecture trained together as one vectorised model.

A single trial is a pack of one; there is no other code path. Per-trial independence (pack ==
solo) comes from three rules: every random draw uses the trial's own generator (init, epoch
order, dropout, augmentation, oversampling); the loss is the sum of each trial's mean loss, so
each trial's gradient is its solo gradient; and every per-trial setting is a column in the
vectorised update, with unused settings exact identities. A trial that stops (diverged, early
stopped) is frozen with LR 0; the rest of the pack goes on.

Per epoch: shuffle (PB-6), mini-batches (PB-15) with gradient accumulation (PB-17), per-trial
global-norm clipping (PB-16), L1 (PB-20), evaluation, early stopping (PB-21), LR schedule
(PB-14). Gradient norm and update/weight ratios (PB-18) are measured on each epoch's last step.
"""
from __future__ import annotations

import contextlib
import math
import statistics
import sys
import time
import warnings

import torch
import torch.nn.functional as F

from alchemist.train.data import ALIGN, Manifest, Split, augment, batch_spans, eval_rows, to_device
from alchemist.train.losses import loss_kind, n_outputs, per_trial_loss
from alchemist.train.metrics import PackMetrics, direction, ranking_scores
from alchemist.train.stopping import Stopping
from alchemist.train.models import build_model
from alchemist.train.params import trial_generator
from alchemist.train.optim import PackOptimizer, PackSchedule, lead, trial_grad_norms
from alchemist.train.transfer import ParameterGroups, load_weights

# PackNet's parameters and their grads are views of one buffer each; grads accumulate in place.
warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout contract")
class Preempted(Exception):
    """SIGTERM arrived: the state was checkpointed and the process should exit (143)."""


class PackTrainer:
    def __init__(self, trials: list[dict], prep: Manifest, train: Split, val: Split, device):
        self.trials, self.K, self.prep, self.device = trials, len(trials), prep, torch.device(device)
        cfg = trials[0]
        self.train, self.val, self.epochs = train, val, int(cfg["epochs"])
        self.loss = loss_kind(cfg, prep.task)
        self.scoring = PackMetrics(prep.task, self.loss, prep.metric, prep.n_classes,
                                   prep.manifest.get("classes"))
        self.metric = self.scoring.metric                          # what val_metric measures
        self.model = build_model(trials, train.X.shape[1], n_outputs(prep.task, self.loss, prep.n_classes),
                                 prep.image_shape, self.device, prep.manifest.get("sequence"))
        if cfg["init_from"]:                                      # PB-12 (alchemist.train.transfer)
            for line in load_weights(self.model, self.K, cfg["init_from"]):
                print(line, file=sys.stderr)
        self.slots, self.matrices = self.model.slots(), self.model.matrix_slots()
        self.groups = ParameterGroups(trials, self.slots)
        self.opt = PackOptimizer(cfg["optimizer"], self.slots, trials)
        self.sched = PackSchedule(trials, self.epochs)
        self.gens = {s: [trial_generator(t, s, "cpu" if s == "shuffle" else self.device) for t in trials]
                     for s in ("shuffle", "dropout", "augment")}
        weights = prep.class_weights() if cfg["rebalance"] == "prep" else None
        method = prep.rebalance_method() if weights else "none"
        self.class_w = torch.tensor(weights, device=self.device) if method == "class_weight" else None
        self.row_w = torch.tensor(weights)[train.y.cpu()] if method == "oversample" else None
        self.clip = torch.tensor([float(t["grad_clip"] or math.inf) for t in trials], device=self.device)
        self.l1 = torch.tensor([float(t["l1"]) for t in trials], device=self.device)
        self.any_clip, self.any_l1 = any(t["grad_clip"] for t in trials), any(t["l1"] for t in trials)
        self.augment = bool(cfg["augment"]) and prep.image_shape is not None
        self.autocast = bool(cfg["bf16"]) and self.device.type == "cuda"
        self.batch, self.accum = int(cfg["batch_size"]), int(cfg["grad_accum"])
        # bookkeeping, all of it in the checkpoint. `epoch` counts the pack's epochs, `trial_epoch`
        # each trial's (a continued trial starts at its epochs done, `start` = the epoch budget
        # it continued from); `cont` holds each trial's continuation state taken when it stopped.
        self.epoch, self.status = 0, ["running"] * self.K
        self.trial_epoch, self.start, self.cont = [0] * self.K, [0] * self.K, [None] * self.K
        self.rows: list[list[dict]] = [[] for _ in trials]
        self.stopping = Stopping(trials, direction(self.loss))     # divergence, early stopping
        self.diverged_epoch: list[int | None] = [None] * self.K
        self.init_loss = self.evaluate(val)[0].tolist()
        self.stop_requested, self.pending = False, None
        self.set_lr()

    def amp(self):
        """bf16 autocast on CUDA when the trial asks for it (a no-op context otherwise)."""
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.autocast else contextlib.nullcontext()

    @property
    def active(self) -> list[bool]:
        """Per trial (K): True while it is still running (not completed, early-stopped or diverged)."""
        return [s == "running" for s in self.status]

    # -- one step -------------------------------------------------------------------------------
    def forward_loss(self, idx):
        """Per-trial data loss (K,) and the step's train-metric record (PackMetrics.record) on
        the rows idx (K, B)."""
        flat = idx.reshape(-1)      # index_select: several times faster than X[idx]
        X = self.train.X            # on the device, or a memory-mapped split on the host
        xb = to_device(X.index_select(0, to_device(flat, X.device)), self.device).view(*idx.shape, -1)
        yb = self.train.y.index_select(0, flat).view(idx.shape)
        if self.augment:
            xb = augment(xb, self.trials, self.gens["augment"], self.prep.image_shape)
        with self.amp():
            out = self.model(xb, self.gens["dropout"])
        return (per_trial_loss(out.float(), yb, self.loss, self.class_w),
                self.scoring.record(out.detach(), yb))

    def backward(self, loss):
        """Accumulate the grads of sum over k of (loss_k + l1_k · |W_k|_1), divided by grad_accum."""
        total = loss
        if self.any_l1:
            l1 = torch.zeros(self.K, device=self.device)
            for s in self.matrices:
                a = lead(s.param, s).abs().flatten(1).sum(1)
                l1 = l1 + a if s.stacked else l1.index_add(0, torch.tensor(s.owners, device=a.device), a)
            total = total + self.l1 * l1
        (total.sum() / self.accum).backward()

    def optimizer_step(self, probe: bool):
        """Clip per trial, step, zero grads; on a probe step also measure PB-18 ratios."""
        self.groups.mask_grads()      # frozen parameters: no gradient (alchemist.train.transfer)
        norms = trial_grad_norms(self.slots, self.K) if probe or self.any_clip else None
        if self.any_clip:
            coef = (self.clip / (norms + 1e-6)).clamp(max=1.0)
            for s in self.slots:
                if s.param.grad is not None:
                    c = coef if s.stacked else coef[s.owners]
                    lead(s.param.grad, s).mul_(c.view(-1, *[1] * (s.param.dim() - s.stacked)))
        before = [s.param.detach().clone() for s in self.matrices] if probe else None
        self.opt.step()
        self.model.zero_grad_()
        if probe:
            ratios = [[] for _ in range(self.K)]
            for s, b in zip(self.matrices, before):
                r = (lead(s.param.detach(), s) - lead(b, s)).flatten(1).norm(dim=1) / \
                    lead(b, s).flatten(1).norm(dim=1).clamp_min(1e-12)
                for k, v in zip(s.owners, r.tolist()):
                    ratios[k].append(v)
            return norms.tolist(), ratios

    def step(self, idx) -> torch.Tensor:
        """One optimisation step on the rows idx (K, B): forward, backward, clip, update. Returns
        each trial's loss before the step, (K,). The public step API (LR finder, sanity checks)."""
        loss, _ = self.forward_loss(idx)
        self.backward(loss)
        self.optimizer_step(probe=False)
        return loss.detach()

    def minibatches(self):
        """Endless mini-batches (K, B) of row indices: each trial's own shuffled order (PB-6),
        epoch after epoch, cut as an epoch cuts them (batch_spans)."""
        while True:
            order = self.epoch_order()
            for s, e in batch_spans(order.shape[1], self.batch):
                yield order[:, s:e]

    def set_lrs(self, lrs) -> None:
        """Override every trial's LR for the next steps (the LR range test sweeps it)."""
        self.opt.set_lr(torch.as_tensor(lrs, dtype=torch.float64), None, self.groups.at(self.trial_epoch))

    # -- one epoch ------------------------------------------------------------------------------
    def epoch_order(self):
        """Each active trial's row order for this epoch from its own generator (PB-6, PB-4)."""
        N, orders = len(self.train.y), []
        for k, gen in enumerate(self.gens["shuffle"]):
            if not self.active[k]:
                orders.append(torch.arange(N))
            elif self.row_w is not None:
                orders.append(torch.multinomial(self.row_w, N, replacement=True, generator=gen))
            else:
                orders.append(torch.randperm(N, generator=gen))
        return torch.stack(orders).to(self.device)

    def run_epoch(self, resume: dict | None = None):
        """One epoch, or its rest from `resume`: (accumulators, last step's (grad norms, ratios), seconds)."""
        self.model.train()
        st = resume or {"order": self.epoch_order(), "batch": 0, "elapsed": 0.0,
                        "loss": torch.zeros(self.K, dtype=torch.float64, device=self.device),
                        "score": self.scoring.zero(self.K, self.device), "n": 0}
        t0 = time.perf_counter() - st["elapsed"]
        spans = batch_spans(st["order"].shape[1], self.batch)
        probe, losses, records, first = None, [], [], st["batch"]
        for b in range(first, len(spans)):
            idx = st["order"][:, spans[b][0]:spans[b][1]]
            loss, record = self.forward_loss(idx)
            self.backward(loss)
            losses.append(loss.detach())
            records.append(record)
            last = b == len(spans) - 1
            if (b + 1) % self.accum == 0 or last:
                probe = self.optimizer_step(probe=last)
                if self.stop_requested and not last:
                    self._fold(st, losses, records, spans[first:b + 1])
                    st.update(batch=b + 1, elapsed=time.perf_counter() - t0)
                    raise Preempted(st)
        self._fold(st, losses, records, spans[first:])
        return st, probe, time.perf_counter() - t0

    def _fold(self, st, losses, records, spans) -> None:
        """Add the steps' losses (weighted by their rows) and train-metric records to the
        epoch's accumulators, once per epoch rather than once per step."""
        if not spans:
            return
        rows = torch.tensor([e - s for s, e in spans], dtype=torch.float64, device=self.device)
        st["loss"] += (torch.stack(losses).double() * rows[:, None]).sum(0)
        y = self.train.y.index_select(0, st["order"][:, spans[0][0]:spans[-1][1]].reshape(-1))
        st["score"] += self.scoring.fold(records, y.view(self.K, -1))
        st["n"] += int(rows.sum())

    @torch.no_grad()
    def evaluate(self, split: Split):
        """Per trial (K,) loss and every metric by name (PackMetrics.compute) on a whole split,
        eval mode."""
        self.model.eval()
        N = len(split.y)
        loss = torch.zeros(self.K, dtype=torch.float64, device=self.device)
        sc = self.scoring.zero(self.K, self.device)
        scores = [] if self.scoring.keeps_scores(self.K, N) else None
        chunk = eval_rows(split.X.shape[1])
        for s in range(0, N, chunk):
            x, y = to_device(split.X[s:s + chunk], self.device), split.y[s:s + chunk]
            pad = -len(y) % ALIGN           # zero rows, dropped below: aligned per-trial blocks
            xp = F.pad(x, (0, 0, 0, pad)) if pad else x
            xk, yk = xp.expand(self.K, *xp.shape), y.expand(self.K, *y.shape)
            with self.amp():
                out = self.model(xk)[:, :len(y)]
            loss += per_trial_loss(out.float(), yk, self.loss, self.class_w).double() * len(y)
            sc += self.scoring.score(out, yk)
            if scores is not None:
                scores.append(ranking_scores(out, self.loss))
        self.model.train()
        return loss / N, self.scoring.compute(sc, N, split.y,
                                                     torch.cat(scores, 1) if scores else None)

    def end_epoch(self, st, probe, wall: float):
        """Log a row per running trial; diverged / early-stopping bookkeeping; schedule step."""
        self.epoch += 1
        val_loss, val = self.evaluate(self.val)
        val_metric, extra = val["metric"], self.scoring.values(val)
        train_loss = (st["loss"] / st["n"]).tolist()
        train_metric = self.scoring.compute(st["score"], st["n"])["metric"]
        lrs = self.opt.lr.tolist()
        norms, ratios = probe
        for k in range(self.K):
            if not self.active[k]:
                continue
            self.trial_epoch[k] += 1
            epoch = self.trial_epoch[k]
            r = sorted(ratios[k]) or [math.nan]
            row = {"epoch": epoch, "train_loss": train_loss[k], "val_loss": float(val_loss[k]),
                   "train_metric": float(train_metric[k]), "val_metric": float(val_metric[k]),
                   "lr": lrs[k], "grad_norm": norms[k], "update_ratio_min": r[0],
                   "update_ratio_median": statistics.median(r), "update_ratio_max": r[-1],
                   "epoch_time_s": wall}
            row.update({name: values[k] for name, values in extra.items()})
            self.rows[k].append(row)
            if self.stopping.diverged(row, self.init_loss[k]):
                self.status[k], self.diverged_epoch[k] = "diverged", epoch
                continue
            if self.stopping.observe(k, epoch, row, lambda k=k: self.model.trial_state(k)):
                self.status[k] = "early_stopped"
            if epoch >= self.epochs and self.status[k] == "running":
                self.status[k] = "completed"
            if self.status[k] != "running":
                self.cont[k] = self.snapshot(k)
        self.sched.step(val_loss.tolist())
        self.set_lr()

    @property
    def best(self) -> list[dict]:
        """Each trial's best-epoch record (alchemist.train.stopping), as checkpoints keep it."""
        return self.stopping.best

    @best.setter
    def best(self, records: list[dict]) -> None:
        """Replace every trial's best-epoch record (a checkpoint being restored)."""
        self.stopping.best = records

    def set_lr(self):
        """Each trial's scheduled LR for the next epoch; 0 freezes trials that stopped."""
        active = self.active
        self.opt.set_lr(self.sched.lrs() * torch.tensor(active, dtype=torch.float64), active,
                        self.groups.at(self.trial_epoch))

    def finish(self):
        """Final weights: the best epoch's where early stopping restores them, or after divergence."""
        for k, t in enumerate(self.trials):
            state = self.best[k]["state"]
            if state is not None and (t["early_stopping"] or self.status[k] == "diverged"):
                self.model.load_trial_state(k, state)

    # -- continuation across packs (successive halving) ------------------------------------------
    def snapshot(self, k: int) -> dict:
        """Trial k's continuation state at the end of its last epoch: everything that lets another
        pack go on with it (the schedule is replayed from the rows, see continue_from)."""
        rng = getattr(self.model, "rng", None)
        return {"config": self.trials[k], "budget": self.epochs, "epochs_done": self.trial_epoch[k],
                "status": self.status[k], "model": self.model.trial_state(k),
                "custom_rng": rng[k].clone() if rng is not None else None, "opt": self.opt.trial_state(k),
                "gens": {name: gens[k].get_state() for name, gens in self.gens.items()},
                "rows": list(self.rows[k]), "best": dict(self.best[k]), "init_loss": self.init_loss[k]}

    def continue_from(self, k: int, snap: dict) -> bool:
        """Start trial k where a snapshot left it: weights, optimiser slice, generators, early
        stopping, rows. A completed trial runs on to this pack's epochs; an early-stopped one
        stays stopped (its outputs are written again unchanged). The LR schedule is rebuilt for
        this pack's epoch count and replayed over the epochs done (with their val losses): the
        same LRs as restoring it (cosine spans `schedule_epochs`, which halving fixes for all rungs).
        False (nothing changed) when the generators do not fit (another device type)."""
        if any(snap["gens"][name].shape != gens[k].get_state().shape for name, gens in self.gens.items()):
            return False
        self.model.load_trial_state(k, snap["model"])
        if snap["custom_rng"] is not None:
            self.model.rng[k] = snap["custom_rng"]
        self.opt.load_trial_state(k, snap["opt"])
        for name, gens in self.gens.items():
            gens[k].set_state(snap["gens"][name])
        self.rows[k], self.best[k] = list(snap["rows"]), dict(snap["best"])
        self.init_loss[k], self.trial_epoch[k], self.start[k] = snap["init_loss"], snap["epochs_done"], snap["budget"]
        self.status[k] = "running" if snap["status"] == "completed" else snap["status"]
        if self.status[k] == "running":
            for row in self.rows[k]:
                self.sched.step_one(k, row["val_loss"])
        self.set_lr()
        return True

    # -- the loop -------------------------------------------------------------------------------
    def fit(self, checkpoint=None, every: int = 1, progress=None):
        """Train until every trial has stopped. `checkpoint(trainer, force)` saves resume state:
        offered every `every` epochs (it may decline: alchemist.train.checkpoint.Throttle), and
        forced mid-epoch when SIGTERM set `stop_requested` (then Preempted). `progress(trainer)`
        is called after every epoch."""
        while any(self.active) and self.epoch < self.epochs:
            try:
                st, probe, wall = self.run_epoch(self.pending)
            except Preempted as stop:
                self.pending = stop.args[0]
                if checkpoint:
                    checkpoint(self, True)
                raise
            self.pending = None
            self.end_epoch(st, probe, wall)
            if progress:
                progress(self)
            if checkpoint and (self.epoch % every == 0 or self.stop_requested):
                checkpoint(self, self.stop_requested)
            if self.stop_requested and any(self.active) and self.epoch < self.epochs:
                raise Preempted(None)
        self.finish()
