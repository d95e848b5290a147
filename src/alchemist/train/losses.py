"""Losses of a pack (PB-7, PB-4): each trial's mean loss, so the pack's summed loss
gives every trial its solo gradient; the model's output width follows the loss."""
from __future__ import annotations

import torch.nn.functional as F

from alchemist.errors import UserError


def loss_kind(cfg: dict, task: str) -> str:
    """PB-7: the loss follows the task unless set."""
    kind = cfg["loss"] if cfg["loss"] != "auto" else {
        "regression": "mse", "binary": "bce", "multiclass": "cross_entropy"}[task]
    ok = {"mse": ("regression",), "bce": ("binary",), "cross_entropy": ("binary", "multiclass")}
    if task not in ok.get(kind, ()):
        raise UserError(f"loss {kind!r} does not fit a {task} task (PB-7)")
    return kind


def per_trial_loss(out, y, kind: str, class_w=None):
    """Mean loss of each trial, (K,); with class weights a weighted mean (PB-4)."""
    K, B = y.shape
    if kind == "cross_entropy":
        if out.transpose(1, 2).is_contiguous():     # (K, C, B) in memory (NarrowLinear): log-softmax
            loss = F.cross_entropy(out.transpose(1, 2), y, weight=class_w, reduction="none")  # across B
        else:
            loss = F.cross_entropy(out.reshape(K * B, -1), y.reshape(-1), weight=class_w,
                                   reduction="none").view(K, B)
    elif kind == "bce":
        loss = F.binary_cross_entropy_with_logits(out.squeeze(-1), y.to(out.dtype), reduction="none")
        loss = loss * class_w[y] if class_w is not None else loss
    else:
        loss = F.mse_loss(out.squeeze(-1), y.to(out.dtype), reduction="none")
    return loss.sum(1) / class_w[y].sum(1) if class_w is not None else loss.mean(1)


def n_outputs(task: str, loss: str, n_classes: int) -> int:
    """The model's outputs: one logit per class for cross-entropy (two for a binary task, whose
    manifest counts one class column), else one (a BCE logit or a regression value)."""
    if loss == "cross_entropy":
        return 2 if task == "binary" else n_classes
    return 1
