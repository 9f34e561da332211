"""Classification and regression metrics in plain numpy.

Used by training (test metrics, permutation importance) and by evaluation, so
every number we report comes from one implementation, whatever produced the
predictions. Inputs are 1-d arrays; `y_true` holds 0/1 labels for the
classification metrics and `p` the predicted probability of class 1.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize

# Probabilities are clipped this far from 0 and 1 so one confident mistake
# costs a large but finite log loss (the value Keras and scikit-learn use).
EPSILON = 1e-7


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function; the tanh form never overflows, unlike 1 / (1 + exp(-x)) in float32."""
    return 0.5 + 0.5 * np.tanh(0.5 * x)


def _flat(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1)


def accuracy(y_true, p, threshold: float = 0.5) -> float:
    """Share of rows where `p >= threshold` agrees with the label."""
    y, predicted = _flat(y_true), _flat(p) >= threshold
    return float(np.mean(predicted == (y == 1)))


def _confusion(y_true, p, threshold: float) -> tuple[int, int, int]:
    """True positives, false positives, false negatives."""
    positive, predicted = _flat(y_true) == 1, _flat(p) >= threshold
    return (
        int(np.sum(predicted & positive)),
        int(np.sum(predicted & ~positive)),
        int(np.sum(~predicted & positive)),
    )


def _ratio(numerator: float, denominator: float) -> float:
    """0.0 for an empty denominator, the convention of scikit-learn's zero_division=0."""
    return float(numerator / denominator) if denominator else 0.0


def precision(y_true, p, threshold: float = 0.5) -> float:
    tp, fp, _ = _confusion(y_true, p, threshold)
    return _ratio(tp, tp + fp)


def recall(y_true, p, threshold: float = 0.5) -> float:
    tp, _, fn = _confusion(y_true, p, threshold)
    return _ratio(tp, tp + fn)


def f1(y_true, p, threshold: float = 0.5) -> float:
    tp, fp, fn = _confusion(y_true, p, threshold)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def roc_auc(y_true, p) -> float:
    """Area under the ROC curve: the probability that a random positive outscores a random negative.

    Computed exactly from ranks (Mann-Whitney U), ties counted as one half.
    NaN when only one class is present, where the AUC is undefined.
    """
    y, scores = _flat(y_true) == 1, _flat(p)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = _average_ranks(scores)
    u = ranks[y].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def _average_ranks(scores: np.ndarray) -> np.ndarray:
    """1-based ranks; tied scores share the mean of their ranks."""
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    mean_rank = (starts + ends + 1) / 2
    ranks = np.empty(len(scores))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def logit_scale(y_true, logits) -> float:
    """The factor a > 0 that minimizes the log loss of sigmoid(a x logit): temperature scaling (Guo et al., 2017).

    A positive factor keeps the sign of every logit, so the decisions at 0.5 (accuracy) and the order
    (AUC) stay as they are; only how sure the probabilities are changes. The loss is convex in a;
    it is searched over [0.01, 100] (labels a logit separates perfectly push a to the bound).
    """
    y, z = _flat(y_true).astype(np.float64), _flat(logits).astype(np.float64)
    if not len(y) or not z.any():
        return 1.0

    def loss(a: float) -> float:
        return float(np.mean(np.logaddexp(0.0, a * z) - y * a * z))

    found = scipy.optimize.minimize_scalar(loss, bounds=(0.01, 100.0), method="bounded", options={"xatol": 1e-6})
    return float(found.x)


def log_loss(y_true, p) -> float:
    """Mean binary cross-entropy, natural log."""
    y, q = _flat(y_true), np.clip(_flat(p), EPSILON, 1 - EPSILON)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def rmse(y_true, y_pred) -> float:
    return float(np.sqrt(np.mean((_flat(y_true) - _flat(y_pred)) ** 2)))


def mae(y_true, y_pred) -> float:
    return float(np.mean(np.abs(_flat(y_true) - _flat(y_pred))))


def classification_report(y_true, p, threshold: float = 0.5) -> dict[str, float]:
    """Every classification metric at once, as written to metrics.json."""
    return {
        "rows": int(_flat(y_true).size),
        "accuracy": accuracy(y_true, p, threshold),
        "auc": roc_auc(y_true, p),
        "log_loss": log_loss(y_true, p),
        "precision": precision(y_true, p, threshold),
        "recall": recall(y_true, p, threshold),
        "f1": f1(y_true, p, threshold),
        "positive_rate": float(np.mean(_flat(y_true) == 1)),
    }


def regression_report(y_true, y_pred) -> dict[str, float]:
    return {"rows": int(_flat(y_true).size), "rmse": rmse(y_true, y_pred), "mae": mae(y_true, y_pred)}
