"""Exact top-K selection over a block of keys: score descending, ties by column (movieId) ascending."""

from __future__ import annotations

import functools

import numpy as np

from sparkrec.core.ops import apply

# The keep-th best key among SAMPLE_COLUMNS evenly spread columns bounds each
# row's top-K from below with a wide margin, so only a few hundred survivors
# per row are sorted instead of the whole catalogue.
SAMPLE_COLUMNS = 1024
_LOWEST = np.float32(np.finfo(np.float32).min)


@functools.lru_cache(maxsize=4)
def sample_columns(columns: int) -> np.ndarray:
    return np.linspace(0, columns - 1, min(SAMPLE_COLUMNS, columns)).astype(np.int64)


def sample_thresholds(keys: np.ndarray, k: int) -> np.ndarray:
    """Per row, a key that about 4k + 8 * columns / SAMPLE_COLUMNS of the row's keys reach."""
    columns = keys.shape[1]
    picks = sample_columns(columns)
    keep = min(len(picks), -(-len(picks) * 4 * k // columns) + 8)
    sampled = np.partition(keys[:, picks], len(picks) - keep, axis=1)
    return np.maximum(sampled[:, len(picks) - keep], _LOWEST)


def _tail_scores(tail: tuple, keys: np.ndarray) -> np.ndarray:
    # In float64 the tail stays monotone to float32 precision; it only sees survivors.
    return apply(tail, keys.astype(np.float64)[:, None])[:, 0].astype(np.float32)


def _select(keys: np.ndarray, k: int, tail: tuple, thresholds: np.ndarray):
    """Top-k among the keys >= each row's threshold, and whether that is provably the row's top-k.

    Excluded keys are below the threshold, so their scores are at most
    tail(threshold): the row is exact when it kept k candidates and
    tail(threshold) is below its k-th score, or when nothing finite was
    excluded (-inf keys, the watched movies, are never candidates).
    """
    # A 2-D nonzero builds its indices slowly; the 1-D one on a sparse mask is fast.
    rows, cols = np.divmod(np.flatnonzero(keys >= thresholds[:, None]), keys.shape[1])
    scores = _tail_scores(tail, keys[rows, cols])
    order = np.lexsort((cols, -scores, rows))
    rows, cols, scores = rows[order], cols[order], scores[order]
    ranks = np.arange(len(rows)) - np.searchsorted(rows, np.arange(len(keys)))[rows]
    kept = ranks < k
    kth = np.full(len(keys), np.inf, dtype=np.float32)
    kth[rows[ranks == k - 1]] = scores[ranks == k - 1]
    enough = np.bincount(rows, minlength=len(keys)) >= k
    exact = (thresholds == _LOWEST) | (enough & (_tail_scores(tail, thresholds) < kth))
    return rows[kept], cols[kept], scores[kept], ranks[kept], exact


def top_k(keys: np.ndarray, k: int, tail: tuple = ()) -> tuple[np.ndarray, ...]:
    """Each row's best k columns by tail(key) descending, then column ascending; -inf keys never.

    Returns (row, column, score, rank) arrays ordered by row then rank (0-based).
    With the catalogue sorted by movieId, column order is movieId order.
    """
    rows, cols, scores, ranks, exact = _select(keys, k, tail, sample_thresholds(keys, k))
    if exact.all():
        return rows, cols, scores, ranks
    redo = np.flatnonzero(~exact)
    again = _select(keys[redo], k, tail, np.full(len(redo), _LOWEST))
    keep = exact[rows]
    merged = [
        np.concatenate([part[keep], extra])
        for part, extra in zip((rows, cols, scores, ranks), (redo[again[0]], *again[1:4]))
    ]
    order = np.lexsort((merged[3], merged[0]))
    return tuple(part[order] for part in merged)
