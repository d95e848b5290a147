"""Optimisers and LR schedules for a pack, one setting per trial.

PackOptimizer applies torch.optim's update rules (PB-11, torch's defaults) to the stacked (K, ...)
parameters. Where torch has a fused kernel (SGD, Adam, AdamW, Adagrad: what torch.optim's
`fused=True` runs, one pass over each tensor instead of one per operation) it is called once per
group of running trials with equal settings, over their rows of every parameter. Adadelta and
RMSprop use torch's single-tensor formulas on the whole stack, every continuous setting a
per-trial column. Stepping K separate torch.optim objects cost more than the model itself on
small nets; tests/test_train_optim.py checks each rule against torch.optim step by step. A
trial's update never depends on its pack-mates: kernels work row by row or element-wise, and an
unused setting (momentum 0, weight decay 0, no clipping) is an exact identity.

PackSchedule drives one torch.optim.lr_scheduler per trial (PB-14) on a one-parameter
placeholder optimiser and reads each trial's LR back every epoch; warm-up is LinearLR chained by
SequentialLR (or stepped before ReduceLROnPlateau). Schedules count epochs from the end of warm-up.
"""
from __future__ import annotations

import warnings

import torch
from torch.optim import lr_scheduler as S

from alchemist.errors import UserError

OPTIMIZERS = ("sgd", "adam", "adamw", "adagrad", "adadelta", "rmsprop")
SCHEDULES = ("constant", "step", "multistep", "exponential", "cosine", "cosine_restarts", "plateau")


def effective_lr(cfg: dict) -> float:
    """PB-12: lr, linearly scaled by batch_size / lr_reference_batch when a reference is set."""
    ref = cfg.get("lr_reference_batch")
    return float(cfg["lr"]) * (cfg["batch_size"] / ref if ref else 1.0)


# kind -> (torch's fused kernel, its state tensors, the per-trial settings that form a group)
FUSED = {"sgd": (torch._fused_sgd_, ("buf",), ("momentum", "weight_decay", "nesterov")),
         "adam": (torch._fused_adam_, ("m", "v"), ("beta1", "beta2", "weight_decay")),
         "adamw": (torch._fused_adamw_, ("m", "v"), ("beta1", "beta2", "weight_decay")),
         "adagrad": (torch._fused_adagrad_, ("sum",), ("weight_decay",))}


class PackOptimizer:
    def __init__(self, kind: str, slots, trials: list[dict]):
        if kind not in OPTIMIZERS:
            raise UserError(f"unknown optimizer {kind!r}; choose one of {', '.join(OPTIMIZERS)}")
        if kind == "sgd" and any(t["nesterov"] and t["momentum"] <= 0 for t in trials):
            raise UserError("nesterov needs momentum > 0 (torch.optim.SGD)")
        self.kind, self.slots, self.K = kind, slots, len(trials)
        self.t = [0] * self.K          # steps per trial (a continued trial brings its own count)
        self.hp = {k: torch.tensor([float(t[k]) for t in trials], dtype=torch.float64)
                   for k in ("weight_decay", "momentum")}
        self.any_wd = bool((self.hp["weight_decay"] != 0).any())
        self.fused, self.state_keys, group_by = FUSED.get(kind, (None, (), ()))
        self.settings = [tuple(float(t[k]) for k in group_by) for t in trials]
        self.device = slots[0].param.device
        self.state: list[dict] = [{} for _ in slots]
        # step count per (slot, trial): a trial's steps less those the slot sat frozen
        # (alchemist.train.transfer), as torch counts a parameter's steps from its first update
        self.skipped = torch.zeros(len(slots), self.K, dtype=torch.float64)
        self.any_skipped = False
        self._steps = torch.zeros(len(slots), self.K, dtype=torch.float32, device=self.device)
        self._step_views = [list(row.unbind()) for row in self._steps]
        self._args, self._args_key = None, []
        self.set_lr(torch.zeros(self.K, dtype=torch.float64))

    def set_lr(self, lr: torch.Tensor, active=None, mult=None):
        """Per-trial LR (K,) float64 for the next steps. A trial not `active` (stopped, diverged)
        is frozen: LR 0 for the column rules, left out of the fused calls (state untouched too).
        `mult` (alchemist.train.transfer): per slot, per owner, a factor on the LR; 0 freezes
        that parameter of that trial the same way."""
        self.lr, h = lr.to(torch.float64), self.hp
        self.lr_list = self.lr.tolist()
        active = [True] * self.K if active is None else list(active)
        groups: dict[tuple, list[tuple[int, int, int]]] = {}
        self.frozen = torch.zeros(len(self.slots), self.K, dtype=torch.float64)
        for si, slot in enumerate(self.slots):
            for i, k in enumerate(range(self.K) if slot.stacked else slot.owners):
                m = mult[si][i] if mult else 1.0
                if active[k] and m:
                    groups.setdefault((self.lr_list[k] * m, *self.settings[k]), []).append((si, i, k))
                elif active[k]:
                    self.frozen[si, k] = 1.0
        self.any_frozen = bool(self.frozen.any())
        self.groups = list(groups.items())
        self._args = None
        self.vec = {"neg_lr": -self.lr, "wd": h["weight_decay"], "m": h["momentum"]}
        self.vec = {k: v.to(self.device, torch.float32) for k, v in self.vec.items()}
        self.cols = [self._columns(slot, self.vec) for slot in self.slots]
        if mult:
            for si, (slot, cols) in enumerate(zip(self.slots, self.cols)):
                cols["neg_lr"] = cols["neg_lr"] * torch.tensor(mult[si], device=self.device).view(
                    cols["neg_lr"].shape)

    @staticmethod
    def _columns(slot, vec: dict) -> dict:
        """Per-trial settings shaped to broadcast over a slot: (len(owners), 1, ...)."""
        shape = (-1,) + (1,) * (slot.param.dim() - slot.stacked)
        return {k: (v if slot.stacked else v[slot.owners]).view(shape) for k, v in vec.items()}

    @torch.no_grad()
    def step(self):
        """Update every slot once, each trial at its own LR; a frozen parameter row keeps its
        weights and optimiser state. Returns None."""
        self.t = [t + 1 for t in self.t]
        if self.any_frozen:
            self.skipped += self.frozen
            self.any_skipped = True
        if self.fused is not None:
            return self._fused_step()
        update = getattr(self, f"_{self.kind}")
        for si, (slot, st, cols) in enumerate(zip(self.slots, self.state, self.cols)):
            if slot.param.grad is not None:
                rows = (self.frozen[si] if slot.stacked else self.frozen[si, slot.owners]) if self.any_frozen else None
                frozen = rows.bool().to(self.device) if rows is not None and rows.any() else None
                kept = {key: v[frozen].clone() for key, v in st.items()} if frozen is not None else {}
                update(lead(slot.param, slot), lead(slot.param.grad, slot), st, cols.__getitem__)
                if frozen is not None:          # a frozen row's state stays as it was (or at 0)
                    for key, v in st.items():
                        v[frozen] = kept[key] if key in kept else 0.0

    def _l2(self, p, g, col):
        return g + p * col("wd") if self.any_wd else g

    def _fused_step(self):
        """One fused call per group of trials with equal settings, over their rows of every slot;
        each row brings its trial's step count (Adam's bias corrections, Adagrad's lr decay)."""
        steps = torch.tensor(self.t, dtype=torch.float64)
        self._steps.copy_((steps[None, :] - self.skipped) if self.any_skipped else steps)
        for (lr, *setting), (p, g, *state), step in self._fused_args():
            if self.kind == "sgd":
                momentum, wd, nesterov = setting
                self.fused(p, g, state[0] if momentum else [], weight_decay=wd, momentum=momentum,
                           lr=lr, dampening=0.0, nesterov=bool(nesterov), maximize=False, is_first_step=False)
            elif self.kind == "adagrad":
                self.fused(p, g, state[0], step, lr=lr, lr_decay=0.0, weight_decay=setting[0],
                           eps=1e-10, maximize=False)
            else:
                b1, b2, wd = setting
                self.fused(p, g, *state, [], step, lr=lr, beta1=b1, beta2=b2, weight_decay=wd,
                           eps=1e-8, amsgrad=False, maximize=False)

    def _fused_args(self) -> list:
        """Per group: (settings, the rows of its (slot, trial) pairs' parameter, grad and state,
        their step counts). Built again only when the groups change (set_lr) or one of those
        tensors is another object (a custom model's fresh grads, a loaded state); otherwise the
        step reuses the lists. State starts at zero, where torch starts it (SGD's first buffer g
        equals 0·m + g)."""
        tensors = {}
        for si, (slot, st) in enumerate(zip(self.slots, self.state)):
            if slot.param.grad is not None:
                for key in self.state_keys:
                    if key not in st:
                        st[key] = torch.zeros_like(lead(slot.param, slot))
                tensors[si] = (slot.param, slot.param.grad, *(st[key] for key in self.state_keys))
        key = [t for ts in tensors.values() for t in ts]
        if self._args is None or len(key) != len(self._args_key) or \
                any(a is not b for a, b in zip(key, self._args_key)):
            rows = {si: [list(lead(t, self.slots[si]).unbind()) for t in ts] for si, ts in tensors.items()}
            self._args, self._args_key = [], key
            for setting, members in self.groups:
                picked = [(si, i, k) for si, i, k in members if si in rows]
                if picked:
                    lists = [[rows[si][n][i] for si, i, _ in picked] for n in range(len(rows[picked[0][0]]))]
                    self._args.append((setting, lists, [self._step_views[si][k] for si, _, k in picked]))
        return self._args

    def _adadelta(self, p, g, st, col, rho=0.9, eps=1e-6):
        g = self._l2(p, g, col)
        if "sq" not in st:
            st["sq"], st["acc"] = torch.zeros_like(p), torch.zeros_like(p)
        st["sq"].mul_(rho).addcmul_(g, g, value=1 - rho)
        delta = st["acc"].add(eps).sqrt_().div_(st["sq"].add(eps).sqrt_()).mul_(g)
        st["acc"].mul_(rho).addcmul_(delta, delta, value=1 - rho)
        p.addcmul_(delta, col("neg_lr"))

    def _rmsprop(self, p, g, st, col, alpha=0.99, eps=1e-8):
        g = self._l2(p, g, col)
        if "sq" not in st:
            st["sq"], st["buf"] = torch.zeros_like(p), torch.zeros_like(p)
        st["sq"].mul_(alpha).addcmul_(g, g, value=1 - alpha)
        st["buf"].mul_(col("m")).addcdiv_(g, st["sq"].sqrt().add_(eps))
        p.addcmul_(st["buf"], col("neg_lr"))

    def state_dict(self) -> dict:
        """The optimiser's resume state: steps per trial, per-slot state tensors, frozen-step counts."""
        return {"t": self.t, "state": self.state, "skipped": self.skipped}

    def load_state_dict(self, sd: dict):
        """Restore a state_dict() (a missing `skipped` counts no frozen steps)."""
        self.t, self.state = list(sd["t"]), sd["state"]
        self.skipped = sd.get("skipped", torch.zeros_like(self.skipped))
        self.any_skipped = bool(self.skipped.any())

    def trial_state(self, k: int) -> dict:
        """Trial k's slice of the optimiser: its step count and, per slot it owns, its tensors."""
        return {"t": self.t[k], "skipped": self.skipped[:, k].clone(),
                "slots": [{key: v[s.owners.index(k)].clone() for key, v in st.items()}
                          if k in s.owners else None for s, st in zip(self.slots, self.state)]}

    def load_trial_state(self, k: int, sd: dict):
        """Put a trial_state() into trial k; state tensors the pack lacks start at zero, which is
        where every rule's state starts (SGD's first buffer g equals 0·m + g)."""
        self.t[k] = sd["t"]
        if "skipped" in sd:
            self.skipped[:, k] = sd["skipped"]
            self.any_skipped = bool(self.skipped.any())
        for s, st, saved in zip(self.slots, self.state, sd["slots"]):
            for key, v in (saved or {}).items():
                if key not in st:
                    st[key] = torch.zeros_like(lead(s.param, s))
                st[key][s.owners.index(k)].copy_(v)


def lead(t: torch.Tensor, slot) -> torch.Tensor:
    """A slot's tensor (or its grad) with the leading per-trial dimension."""
    return t if slot.stacked else t.unsqueeze(0)


def trial_grad_norms(slots, K: int) -> torch.Tensor:
    """Global gradient norm of each trial, (K,) float32 (PB-16)."""
    sq = torch.zeros(K, device=slots[0].param.device)
    for slot in slots:
        if slot.param.grad is not None:
            s = lead(slot.param.grad, slot).flatten(1).pow(2).sum(1)
            sq = sq + s if slot.stacked else sq.index_add(0, torch.tensor(slot.owners, device=s.device), s)
    return sq.sqrt()


def _scheduler(holder, cfg: dict, epochs: int):
    kind = cfg["schedule"]
    if kind == "constant":
        return S.ConstantLR(holder, factor=1.0, total_iters=0)
    if kind == "step":
        return S.StepLR(holder, step_size=int(cfg["step_size"]), gamma=cfg["gamma"])
    if kind == "multistep":
        return S.MultiStepLR(holder, milestones=list(cfg["milestones"]), gamma=cfg["gamma"])
    if kind == "exponential":
        return S.ExponentialLR(holder, gamma=cfg["gamma"])
    if kind == "cosine":
        span = int(cfg.get("schedule_epochs") or epochs)
        return S.CosineAnnealingLR(holder, T_max=max(1, span - cfg["warmup_epochs"]), eta_min=cfg["eta_min"])
    if kind == "cosine_restarts":
        return S.CosineAnnealingWarmRestarts(holder, T_0=int(cfg["t_0"]), T_mult=int(cfg["t_mult"]),
                                             eta_min=cfg["eta_min"])
    if kind == "plateau":
        return S.ReduceLROnPlateau(holder, mode="min", factor=cfg["plateau_factor"],
                                   patience=int(cfg["plateau_patience"]))
    raise UserError(f"unknown schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")


class _LrHolder(torch.optim.Optimizer):
    """The placeholder a scheduler drives: one parameterless group holding a trial's LR (torch's
    schedulers only read and write `param_groups`). Built without Optimizer.__init__, whose first
    call imports torch._dynamo — 1.3 s of every training job's start-up here."""

    def __init__(self, lr: float):      # Optimizer.__init__ deliberately not called
        self.defaults, self.state = {"lr": lr}, {}
        self.param_groups = [{"params": [], "lr": lr}]

    def step(self, closure=None):
        return None

    def state_dict(self) -> dict:
        return {k: v for k, v in self.param_groups[0].items() if k != "params"}

    def load_state_dict(self, state: dict) -> None:
        self.param_groups[0].update(state)


class PackSchedule:
    """One torch LR scheduler per trial, stepped once per epoch (plateau: on the val loss)."""

    def __init__(self, trials: list[dict], epochs: int):
        self.holders, self.scheds, self.warm = [], [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for t in trials:
                holder = _LrHolder(effective_lr(t))
                w = int(t["warmup_epochs"])
                warm = S.LinearLR(holder, start_factor=1 / (w + 1), total_iters=w) if w > 0 else None
                main = _scheduler(holder, t, epochs)
                if warm is not None and t["schedule"] != "plateau":
                    main, warm = S.SequentialLR(holder, [warm, main], milestones=[w]), None
                self.holders.append(holder)
                self.scheds.append(main)
                self.warm.append((warm, w))
        self.epoch = [0] * len(trials)

    def lrs(self) -> torch.Tensor:
        """Each trial's current scheduled LR, (K,) float64."""
        return torch.tensor([h.param_groups[0]["lr"] for h in self.holders], dtype=torch.float64)

    def step(self, val_losses):
        """End an epoch for every trial; `val_losses` (K) feed the plateau schedules."""
        for k, loss in enumerate(val_losses):
            self.step_one(k, loss)

    def step_one(self, k: int, val_loss):
        """End of one of trial k's epochs (a continued trial replays its epochs through this)."""
        self.epoch[k] += 1
        sched, (warm, w) = self.scheds[k], self.warm[k]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if warm is not None and self.epoch[k] <= w:
                warm.step()
            elif isinstance(sched, S.ReduceLROnPlateau):
                sched.step(float(val_loss))
            else:
                sched.step()

    def state_dict(self) -> dict:
        """The schedules' resume state: epochs per trial; each holder's, scheduler's and warm-up's state."""
        return {"epoch": self.epoch, "holders": [h.state_dict() for h in self.holders],
                "scheds": [s.state_dict() for s in self.scheds],
                "warm": [w.state_dict() if w is not None else None for w, _ in self.warm]}

    def load_state_dict(self, sd: dict):
        """Restore a state_dict() into the schedules built for the same trials."""
        self.epoch = list(sd["epoch"])
        for h, s, (w, _), hs, ss, ws in zip(self.holders, self.scheds, self.warm,
                                            sd["holders"], sd["scheds"], sd["warm"]):
            h.load_state_dict(hs)
            s.load_state_dict(ss)
            if w is not None:
                w.load_state_dict(ws)
