"""The pack's classification metrics equal scikit-learn's, trial by trial, on random predictions
(they are computed for K trials at once from class counts and scores: alchemist.train.metrics),
and prep chooses balanced accuracy for imbalanced classes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, f1_score, recall_score,
                             roc_auc_score)

from alchemist.data.split import choose_metric
from alchemist.errors import UserError
from alchemist.train.metrics import PackMetrics, class_counts, from_counts, ranking_scores, roc_auc


@pytest.mark.parametrize("n_classes, rare", [(2, False), (5, False), (7, True)])
def test_metrics_equal_scikit_learns_per_trial(n_classes, rare):
    rng = np.random.default_rng(n_classes)
    K, N = 6, 400
    y = rng.integers(0, n_classes, N)
    if rare:
        y[y == n_classes - 1] = 0                  # a class absent from the labels
    pred = rng.integers(0, n_classes, (K, N))
    pred[1] = y                                    # a perfect trial
    pred[2] = 0                                    # the majority guess
    counts = class_counts(torch.from_numpy(pred), torch.from_numpy(y), n_classes)
    # batches add up: two halves give the same counts as the whole
    halves = sum(class_counts(torch.from_numpy(pred[:, s]), torch.from_numpy(y[s]), n_classes)
                 for s in (slice(0, N // 2), slice(N // 2, N)))
    assert torch.equal(counts, halves)
    got = from_counts(counts)
    for k in range(K):
        assert got["accuracy"][k].item() == pytest.approx(accuracy_score(y, pred[k]))
        assert got["balanced_accuracy"][k].item() == pytest.approx(balanced_accuracy_score(y, pred[k]))
        assert got["macro_f1"][k].item() == pytest.approx(f1_score(y, pred[k], average="macro",
                                                                   zero_division=0))
        present = np.unique(y)
        recall = recall_score(y, pred[k], labels=present, average=None, zero_division=0)
        assert got["recall"][k][present].tolist() == pytest.approx(recall.tolist())


@pytest.mark.parametrize("kind, n_classes", [("bce", 2), ("cross_entropy", 2), ("cross_entropy", 4)])
def test_roc_auc_equals_scikit_learns_with_ties(kind, n_classes):
    """Binary (one BCE logit, or two cross-entropy logits) and one-vs-rest macro ROC-AUC per
    trial equal roc_auc_score on the same scores (for C classes: the mean of each class against
    the rest, what roc_auc_score(multi_class="ovr") averages); logits on a 0.5 grid make ties."""
    rng = np.random.default_rng(n_classes)
    K, N = 5, 300
    y = rng.integers(0, n_classes, N)
    width = 1 if kind == "bce" else n_classes
    out = torch.from_numpy(np.round(rng.normal(size=(K, N, width)) * 2) / 2).float()
    out[1, :, -1] += torch.from_numpy(y == n_classes - 1).float() * 2    # a better-than-chance trial
    scores = ranking_scores(out, kind)
    got = roc_auc(scores, torch.from_numpy(y))
    for k in range(K):
        s = scores[k].double().numpy()
        if width <= 2:
            expected = roc_auc_score(y, s[:, 0])
        else:
            expected = np.mean([roc_auc_score(y == c, s[:, c]) for c in range(n_classes)])
            probs = torch.softmax(out[k].double(), -1).numpy()      # untied: equals the library's
            assert roc_auc_score(y, probs, multi_class="ovr") == pytest.approx(expected, abs=0.01)
        assert got[k].item() == pytest.approx(expected, abs=1e-12)
    assert len(torch.unique(scores[0, :, 0])) < 0.6 * N                  # ties were there
    assert got[1] > got[0]


def test_pack_metrics_columns_and_values_line_up():
    """metrics.parquet's extra columns: the named classification metrics, ROC-AUC and one recall
    per class (by label), or val_r2 for regression; values() gives one list per column."""
    m = PackMetrics("multiclass", "cross_entropy", None, 3, ["cat", "dog", "a b"])
    assert m.metric == "accuracy" and m.columns() == [
        "val_accuracy", "val_balanced_accuracy", "val_macro_f1", "val_roc_auc",
        "val_recall_cat", "val_recall_dog", "val_recall_a_b"]
    y = torch.tensor([0, 1, 2, 2])
    out = torch.eye(3)[torch.tensor([[0, 1, 2, 1], [0, 0, 0, 0]])] * 5        # K = 2
    computed = m.compute(m.score(out, y.expand(2, 4)), 4, y, ranking_scores(out, m.loss))
    values = m.values(computed)
    assert list(values) == m.columns()
    assert values["val_accuracy"] == [0.75, 0.25] and values["val_recall_a_b"] == [0.5, 0.0]
    reg = PackMetrics("regression", "mse", None, 1)
    yr = torch.tensor([1.0, 2.0, 3.0])
    got = reg.compute(reg.score(torch.tensor([[[1.0], [2.0], [4.0]]]), yr[None]), 3, yr)
    assert reg.metric == "rmse" and reg.columns() == ["val_r2"]
    assert got["rmse"].item() == pytest.approx((1 / 3) ** 0.5) and got["r2"].item() == pytest.approx(0.5)


def test_auto_metric_follows_the_class_balance():
    balanced = np.repeat(np.arange(4), 25)
    skewed = np.r_[np.zeros(95, int), np.ones(5, int)]
    assert choose_metric("auto", "multiclass", balanced, 4)["name"] == "accuracy"
    chosen = choose_metric("auto", "binary", skewed, 2)
    assert chosen["name"] == "balanced_accuracy" and "5.0%" in chosen["reason"]
    assert choose_metric("macro_f1", "binary", skewed, 2)["name"] == "macro_f1"
    assert choose_metric("auto", "regression", np.arange(5.0), 0)["name"] == "rmse"
    with pytest.raises(UserError, match="data.metric"):
        choose_metric("balanced_accuracy", "regression", np.arange(5.0), 0)
    with pytest.raises(UserError, match="data.metric"):
        choose_metric("rmse", "binary", skewed, 2)


@pytest.mark.parametrize("n_classes", [1, 2, 4])
def test_one_models_predictions_score_as_scikit_learn_says(n_classes):
    """alchemist.train.metrics.of_predictions (what `alchemist predict` reports for the averaged
    seeds): the pack's definitions at K = 1, equal to scikit-learn's; n_classes 1 = regression."""
    from sklearn.metrics import mean_squared_error, r2_score

    from alchemist.train.metrics import of_predictions

    rng = np.random.default_rng(n_classes)
    if n_classes == 1:
        y = rng.normal(size=300)
        p = y + rng.normal(size=300) * 0.4
        found = of_predictions("regression", None, y, p)
        assert found["rmse"] == pytest.approx(mean_squared_error(y, p) ** 0.5, rel=1e-12)
        assert found["r2"] == pytest.approx(r2_score(y, p), rel=1e-12)
        return
    y = rng.integers(0, n_classes, 300)
    probs = rng.dirichlet(np.ones(n_classes), 300)
    found = of_predictions("binary" if n_classes == 2 else "multiclass", "macro_f1", y, probs)
    pred = probs.argmax(1)
    auc = roc_auc_score(y, probs[:, 1]) if n_classes == 2 else roc_auc_score(y, probs, multi_class="ovr")
    assert found == pytest.approx({"accuracy": accuracy_score(y, pred),
                                   "balanced_accuracy": balanced_accuracy_score(y, pred),
                                   "macro_f1": f1_score(y, pred, average="macro"), "roc_auc": auc}, rel=1e-12)
