"""Every named metric of a pack's K trials at once: what `val_metric` measures and the
`val_<name>` columns of metrics.parquet.

Regression: rmse and r2. Classification: accuracy, balanced accuracy (the mean recall over the
classes present), macro-F1 (over the classes in the labels or the predictions, as
scikit-learn's `f1_score(average="macro")`), per-class recall — all from per-class counts
accumulated over batches as (3, K, C) tensors by one scatter_add each — and ROC-AUC (binary, or
one-vs-rest macro over the classes present, ties counting half, as scikit-learn's
`roc_auc_score`) from the split's scores.

Written here rather than taken from a library because a pack needs them for K trials in one
vectorised pass every epoch: scikit-learn's functions take one trial at a time (~240 ms an epoch
for a pack of 16) and cost 1.2 s of import, torchmetrics 1.7 s, in every training job;
tests/test_train_metrics.py checks each against scikit-learn on random predictions.
"""
from __future__ import annotations

import torch

CLASSIFICATION = ("accuracy", "balanced_accuracy", "macro_f1")
PER_CLASS_MAX = 20        # per-class recall columns for at most this many classes
AUC_MAX_SCORES = 2 ** 26  # ROC-AUC kept for splits whose K × rows × score columns fit (256 MiB)


def n_labels(task: str, n_classes: int) -> int:
    """Class indices a prediction can take: 2 for a binary task (one class column), else C."""
    return 2 if task == "binary" else n_classes


def selection_metric(task: str, chosen: str | None) -> str:
    """The metric trials are ranked by: prep's choice (data.metric), else accuracy or rmse."""
    return chosen or ("rmse" if task == "regression" else "accuracy")


def predictions(out: torch.Tensor, kind: str) -> torch.Tensor:
    """(K, B) predicted class indices from model outputs (cross-entropy logits or one BCE logit)."""
    return out.contiguous().argmax(-1) if kind == "cross_entropy" else (out.squeeze(-1) > 0).long()


def ranking_scores(out: torch.Tensor, kind: str) -> torch.Tensor:
    """(K, B, S) float32 scores that order rows as the class probabilities do: the BCE logit or
    the positive class's log-probability (S = 1, binary), else each class's log-probability."""
    if kind == "bce":
        return out.float()
    logp = torch.log_softmax(out.float(), dim=-1)
    return logp[..., 1:] if logp.shape[-1] == 2 else logp


def class_counts(pred: torch.Tensor, y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(3, K, C) float64: true positives, predictions and support per trial and class."""
    K = pred.shape[0]
    y = y.expand_as(pred)
    counts = torch.zeros(3, K, n_classes, dtype=torch.float64, device=pred.device)
    counts[0].scatter_add_(1, y, (pred == y).double())
    counts[1].scatter_add_(1, pred, torch.ones_like(pred, dtype=torch.float64))
    counts[2].scatter_add_(1, y, torch.ones_like(y, dtype=torch.float64))
    return counts


def from_counts(counts: torch.Tensor) -> dict[str, torch.Tensor]:
    """accuracy, balanced_accuracy, macro_f1 as (K,) and recall as (K, C) (NaN without support)."""
    tp, predicted, support = counts
    accuracy = tp.sum(1) / support.sum(1).clamp_min(1)
    present = support > 0
    recall = torch.where(present, tp / support.clamp_min(1), torch.full_like(tp, float("nan")))
    balanced = (torch.where(present, recall, torch.zeros_like(tp)).sum(1)
                / present.sum(1).clamp_min(1))
    labels = present | (predicted > 0)
    denominator = predicted + support
    f1 = torch.where(denominator > 0, 2 * tp / denominator.clamp_min(1), torch.zeros_like(tp))
    macro_f1 = (f1 * labels).sum(1) / labels.sum(1).clamp_min(1)
    return {"accuracy": accuracy, "balanced_accuracy": balanced, "macro_f1": macro_f1,
            "recall": recall}


def roc_auc(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(K,) ROC-AUC from (K, N, S) ranking scores and (N,) labels: binary for S = 1, else the
    one-vs-rest mean over the classes with both positives and negatives. Every class at once as
    the Mann-Whitney U of its positives' mid-ranks (one sort; tied scores share the mean of
    their ranks, so a tie counts half)."""
    y = y.to(scores.device)
    K, N, S = scores.shape
    classes = torch.arange(S, device=y.device) if S > 1 else torch.ones(1, dtype=y.dtype, device=y.device)
    positive = (y.unsqueeze(0) == classes.unsqueeze(1)).double()            # (S, N)
    n_pos = positive.sum(1)
    n_neg = N - n_pos
    both = (n_pos > 0) & (n_neg > 0)
    if not bool(both.any()):
        return torch.full((K,), float("nan"), dtype=torch.float64)
    ordered, order = scores.transpose(1, 2).sort(dim=-1)                      # (K, S, N)
    pos = torch.arange(N, device=scores.device).expand_as(order)
    new = torch.ones_like(order, dtype=torch.bool)
    new[..., 1:] = ordered[..., 1:] != ordered[..., :-1]                      # a tie group starts
    first = torch.where(new, pos, 0).cummax(-1).values                       # its first position
    ends = torch.ones_like(new)
    ends[..., :-1] = new[..., 1:]
    last = torch.where(ends, pos, N).flip(-1).cummin(-1).values.flip(-1)     # and its last
    mid_rank = (first + last + 2).double() / 2                                # 1-based, ties averaged
    hit = positive.expand(K, S, N).gather(-1, order)
    u = (mid_rank * hit).sum(-1) - n_pos * (n_pos + 1) / 2                    # (K, S)
    auc = u / (n_pos * n_neg).clamp_min(1)
    return auc[:, both].mean(1)


def recall_column(label: str) -> str:
    """A per-class recall column, its name a valid MLflow key: val_recall_<label>."""
    safe = "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in str(label))
    return f"val_recall_{safe}"


def direction(loss: str) -> str:
    """THE optimisation direction of a trial's selection metric, as the tables keep it in `mode`
    (Optuna's StudyDirection): "min" for a regression (mse loss; its metric is rmse), else "max"."""
    return "min" if loss == "mse" else "max"


class PackMetrics:
    """The metrics of one pack (or one trained trial, K = 1): accumulate a score per batch
    (`zero`, `score`), then `compute` every metric by name; `columns` / `values` are the extra
    metrics.parquet columns (val_accuracy, val_balanced_accuracy, val_macro_f1, val_roc_auc,
    val_recall_<class>…; or val_r2)."""

    def __init__(self, task: str, loss: str, chosen: str | None, n_classes: int,
                 classes: list[str] | None = None):
        self.loss, self.regression = loss, direction(loss) == "min"
        self.metric = selection_metric(task, chosen)
        self.n_labels = n_labels(task, n_classes)
        self.classes = list(classes or [str(i) for i in range(self.n_labels)])

    def zero(self, K: int, device) -> torch.Tensor:
        """An empty accumulator: (K,) squared errors or (3, K, C) class counts."""
        shape = (K,) if self.regression else (3, K, self.n_labels)
        return torch.zeros(shape, dtype=torch.float64, device=device)

    def score(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One batch's share of the accumulator: squared errors, or class counts."""
        if self.regression:
            return (out.squeeze(-1).float() - y).pow(2).sum(1, dtype=torch.float64)
        return class_counts(predictions(out, self.loss), y, self.n_labels)

    def record(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """What a training step keeps for the epoch's train metric, cheaper than `score`: the
        squared errors' sum (K,), or the predicted classes (K, B); `fold` turns an epoch's
        records into the accumulator."""
        if self.regression:
            return self.score(out, y)
        return predictions(out, self.loss)

    def fold(self, records: list[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        """The accumulator of several steps' `record`s; y (K, rows): their labels in order."""
        if self.regression:
            return torch.stack(records).sum(0)
        return class_counts(torch.cat(records, 1), y, self.n_labels)

    def keeps_scores(self, K: int, rows: int) -> bool:
        """Whether an evaluation of `rows` rows keeps the ranking scores ROC-AUC needs."""
        width = 1 if self.n_labels == 2 else self.n_labels
        return not self.regression and K * rows * width <= AUC_MAX_SCORES

    def compute(self, acc: torch.Tensor, n: int, y: torch.Tensor | None = None,
                scores: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per trial (K,) metrics by name from an accumulator over n rows: rmse (and r2 given
        the targets), or accuracy, balanced_accuracy, macro_f1, recall (K, C) and roc_auc
        (given the scores); `metric` is the selection one."""
        if self.regression:
            out = {"rmse": (acc / n).sqrt()}
            if y is not None:
                out["r2"] = 1 - acc / (y.double() - y.double().mean()).pow(2).sum()
        else:
            out = from_counts(acc)
            if y is not None:
                out["roc_auc"] = (roc_auc(scores, y) if scores is not None else
                                  torch.full((acc.shape[1],), float("nan"), dtype=torch.float64))
        return {**out, "metric": out[self.metric]}

    def columns(self) -> list[str]:
        """The extra metrics.parquet columns (per-class recall for up to PER_CLASS_MAX classes)."""
        recall = ([recall_column(c) for c in self.classes]
                  if not self.regression and self.n_labels <= PER_CLASS_MAX else [])
        return self.headline() + recall

    def headline(self) -> list[str]:
        """The columns a trial's summary keeps at its best epoch (all but per-class recall)."""
        return ["val_r2"] if self.regression else [f"val_{m}" for m in (*CLASSIFICATION, "roc_auc")]

    def values(self, computed: dict[str, torch.Tensor]) -> dict[str, list[float]]:
        """The `columns`' per-trial values of one evaluation."""
        cols = {c: computed[c[4:]].tolist() for c in self.headline()}
        if self.regression:
            return cols
        per_class = self.columns()[len(cols):]
        cols.update(zip(per_class, computed["recall"].T.tolist()))
        return cols


def of_predictions(task: str, chosen: str | None, y, predicted) -> dict[str, float]:
    """One model's metrics by name on labelled rows — rmse and r2 from values (N,) for a
    regression, else accuracy, balanced_accuracy, macro_f1 and roc_auc (when defined) from class
    probabilities (N, C) — by the definitions above (PackMetrics, K = 1): what `alchemist predict`
    reports for the winner's averaged seeds."""
    y = torch.as_tensor(y)
    if task == "regression":
        error = (torch.as_tensor(predicted, dtype=torch.float64) - y.double()).pow(2).sum().reshape(1)
        found = PackMetrics(task, "mse", chosen, 1).compute(error, len(y), y)
    else:
        probs, y = torch.as_tensor(predicted, dtype=torch.float64), y.long()
        metrics = PackMetrics(task, "cross_entropy", chosen, probs.shape[1])
        counts = class_counts(probs.argmax(1)[None], y[None], metrics.n_labels)
        scores = probs[:, 1:] if probs.shape[1] == 2 else probs
        found = metrics.compute(counts, len(y), y, scores[None])
    values = {k: float(v.reshape(-1)[0]) for k, v in found.items() if k not in ("recall", "metric")}
    return {k: v for k, v in values.items() if v == v}       # NaN: undefined here (one class only)
