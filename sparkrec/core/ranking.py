"""Top-K ranking metrics, as pure numpy functions.

A ranked list is an array of item ids, best first; `relevant` is the set of
items the user is known to like. Gains are binary. Per-user metrics are
averaged over the users who have at least one relevant item: for the others
recall and NDCG are undefined, and counting them as zeros would reward a
split that happens to give fewer users a liked test movie.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np

RANKING_METRICS = ("precision", "recall", "ndcg", "map")


def hits(ranked: np.ndarray, relevant: Collection, k: int) -> np.ndarray:
    """Boolean per position of the first `k` items: is the item relevant?"""
    head = np.asarray(ranked)[:k]
    return np.isin(head, np.fromiter(relevant, dtype=head.dtype, count=len(relevant)))


def precision_at_k(ranked: np.ndarray, relevant: Collection, k: int) -> float:
    """Relevant items among the first `k`, over `k` (a list shorter than `k` is padded with misses)."""
    return float(hits(ranked, relevant, k).sum()) / k


def recall_at_k(ranked: np.ndarray, relevant: Collection, k: int) -> float:
    """Relevant items among the first `k`, over all relevant items."""
    return float(hits(ranked, relevant, k).sum()) / len(relevant)


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2))


def ndcg_at_k(ranked: np.ndarray, relevant: Collection, k: int) -> float:
    """DCG of the first `k` items (gain 1 per hit, discount 1/log2(position + 1)) over the ideal DCG."""
    found = hits(ranked, relevant, k)
    dcg = float(_discounts(len(found))[found].sum())
    ideal = float(_discounts(min(k, len(relevant))).sum())
    return dcg / ideal


def average_precision_at_k(ranked: np.ndarray, relevant: Collection, k: int) -> float:
    """Mean of precision@i over the hit positions i <= k, divided by min(k, |relevant|)."""
    found = hits(ranked, relevant, k)
    precisions = np.cumsum(found) / np.arange(1, len(found) + 1)
    return float(precisions[found].sum()) / min(k, len(relevant))


_PER_USER = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "map": average_precision_at_k,
}


def mean_ranking_metrics(lists: Mapping, relevant: Mapping[object, Collection], k: int) -> dict[str, float]:
    """Precision, recall, NDCG and MAP at `k`, averaged over the users with a relevant item.

    A user with relevant items but no list (the model ranked nothing for them)
    scores zero on every metric.
    """
    users = [user for user, items in relevant.items() if len(items) > 0]
    if not users:
        raise ValueError("no user has a relevant item: ranking metrics are undefined")
    empty = np.empty(0, dtype=np.int64)
    totals = dict.fromkeys(RANKING_METRICS, 0.0)
    for user in users:
        ranked = lists.get(user, empty)
        for name, metric in _PER_USER.items():
            totals[name] += metric(ranked, relevant[user], k)
    return {f"{name}@{k}": total / len(users) for name, total in totals.items()}


def catalogue_coverage(lists: Mapping, catalogue_size: int, k: int) -> float:
    """Share of the catalogue that appears in at least one user's first `k` items."""
    shown = {int(item) for ranked in lists.values() for item in np.asarray(ranked)[:k]}
    return len(shown) / catalogue_size


def mean_popularity(lists: Mapping, counts: Mapping, k: int) -> float:
    """Mean of `counts[item]` (e.g. train ratings) over every item in the lists' first `k`; absent items count 0.

    Not a quality metric: it says how mainstream a model's lists are, which
    explains much of the gap between models on the metrics above.
    """
    shown = [counts.get(int(item), 0) for ranked in lists.values() for item in np.asarray(ranked)[:k]]
    return float(np.mean(shown)) if shown else 0.0
