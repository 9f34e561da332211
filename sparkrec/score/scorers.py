"""Scorers: the keys of a block of users against the catalogue, one class per path, and the top-K lists they give.

Every scorer follows `Scorer`; `recommend_batch` turns any scorer's keys into
each user's exact top-K (sparkrec.core.topk): watched movies never chosen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
import scipy.sparse

from sparkrec.core import columns as C
from sparkrec.core.columns import LIKED, RANK, SCORE, WATCHED
from sparkrec.core.topk import top_k
from sparkrec.models import towers as retrieval
from sparkrec.score.factorize import Factorized
from sparkrec.score.kernels import kernel_for


@dataclass(frozen=True)
class Block:
    """A block of users as every scorer reads it: their indices, and their watched movies as catalogue cells."""

    user_idx: np.ndarray  # (users,) int64
    watched_rows: np.ndarray  # the row (user) of each watched cell
    watched_cols: np.ndarray  # its catalogue column, ascending within each row
    watched_liked: np.ndarray  # bool: whether the user liked it

    @property
    def offsets(self) -> np.ndarray:
        """CSR offsets of the watched cells by row."""
        return np.searchsorted(self.watched_rows, np.arange(len(self.user_idx) + 1))


class Scorer(Protocol):
    """What recommend_batch reads of a scorer: the catalogue, its keys for a block, the tail applied to the top."""

    movie_ids: np.ndarray  # catalogue movieIds, ascending: column j of every key matrix
    tail: tuple  # elementwise, non-decreasing operations from key to score (sparkrec.core.ops)
    vector_seconds: float  # CPU seconds spent computing user vectors (0 without a user tower)

    def keys(self, block: Block) -> np.ndarray:
        """(users, catalogue) float32 keys; -inf where a movie must not be chosen (watched)."""
        ...


class FastScorer:
    """The fast path: a numpy kernel over the factorized tables."""

    vector_seconds = 0.0  # it has no user tower

    def __init__(self, model: Factorized, movie_ids: np.ndarray):
        self.kernel = kernel_for(model)
        self.tail = model.tail
        self.movie_ids = movie_ids

    def keys(self, block: Block) -> np.ndarray:
        keys = self.kernel(block.user_idx)
        keys[block.watched_rows, block.watched_cols] = -np.inf
        return keys


class TwoTowerScorer:
    """The two-tower model: each user's vector from their watched (rated) movies, dotted with every movie's."""

    tail = ()

    def __init__(
        self,
        towers: retrieval.TwoTower,
        movie_ids: np.ndarray,
        movie_idx: np.ndarray,
        fold_in: retrieval.FoldIn,
    ):
        self.towers = towers
        self.movie_ids = movie_ids
        self.movie_idx = movie_idx  # each catalogue column's movie index: the history the user tower reads
        self.fold_in = fold_in
        # Training's softmax ran over the vocabulary's movies only: so does the fold-in's.
        self.vocabulary = np.flatnonzero(movie_idx != C.UNKNOWN_INDEX)
        movies = towers.movies[self.vocabulary]
        # The fold-in's steps run in the movies' principal directions: far fewer than d of them keep 99%.
        # Without steps there is nothing to run in them, and no SVD to pay for in every worker.
        self.basis = retrieval.principal_basis(movies, fold_in.energy) if fold_in.steps else None
        self.vocabulary_movies = np.ascontiguousarray(movies if self.basis is None else movies @ self.basis)
        self.vocabulary_bias = towers.movie_bias[self.vocabulary]
        self.vector_seconds = 0.0  # CPU time in the user tower and the fold-in, reported apart from the ranking

    def vectors(self, block: Block) -> np.ndarray:
        """The user tower on each user's watched movies; users outside the training sample are then fitted to them."""
        started = time.process_time()
        history = self.movie_idx[block.watched_cols]
        vectors = self.towers.user_vectors(block.offsets, history, block.watched_liked.astype(np.float32))
        outside = np.flatnonzero(block.user_idx == C.UNKNOWN_INDEX)
        if self.fold_in.steps and len(outside):
            cells = np.where(block.watched_liked, 1.0, self.fold_in.dislike_weight).astype(np.float32)
            shape = (len(block.user_idx), len(self.movie_ids))
            rated = scipy.sparse.csr_matrix((cells, (block.watched_rows, block.watched_cols)), shape=shape)
            vectors[outside] = retrieval.fold_in(
                vectors[outside],
                rated[outside][:, self.vocabulary],
                self.vocabulary_movies,
                self.vocabulary_bias,
                self.fold_in,
                self.basis,
            )
        self.vector_seconds += time.process_time() - started
        return vectors

    def keys(self, block: Block) -> np.ndarray:
        keys = self.towers.keys(self.vectors(block))
        keys[block.watched_rows, block.watched_cols] = -np.inf
        return keys


class KerasScorer:
    """The generic path: the (single-output) Keras model on every unwatched (user, movie) pair."""

    tail = ()
    vector_seconds = 0.0  # it has no user tower

    def __init__(self, model, catalogue: dict[str, np.ndarray], movie_ids: np.ndarray, batch_pairs: int):
        self.model = model
        self.catalogue = catalogue
        self.movie_ids = movie_ids
        self.batch_pairs = batch_pairs

    def keys(self, block: Block) -> np.ndarray:
        user_idx = block.user_idx
        movies = len(self.movie_ids)
        candidate = np.ones((len(user_idx), movies), dtype=bool)
        candidate[block.watched_rows, block.watched_cols] = False
        rows, cols = np.divmod(np.flatnonzero(candidate), movies)
        keys = np.full((len(user_idx), movies), -np.inf, dtype=np.float32)
        for start in range(0, len(rows), self.batch_pairs):
            r, c = rows[start : start + self.batch_pairs], cols[start : start + self.batch_pairs]
            feed = {name: values[c] for name, values in self.catalogue.items()}
            feed[C.USER_IDX] = user_idx[r].reshape(-1, 1).astype(np.int32)
            keys[r, c] = np.asarray(self.model.predict_on_batch(feed), dtype=np.float32).reshape(-1)
        return keys


def _cells(lists: pd.Series, movie_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of each user's listed movies in the catalogue, sorted by row then column.

    Sorted so that what is summed over a user's movies (a two-tower user vector) does not depend
    on the order Spark collected them in. Movies absent from the catalogue cannot be recommended
    anyway and are dropped.
    """
    lengths = lists.map(len).to_numpy(dtype=np.int64)
    ids = np.concatenate([np.asarray(w, dtype=np.int64) for w in lists]) if lengths.sum() else np.empty(0, np.int64)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    cols = np.minimum(np.searchsorted(movie_ids, ids), len(movie_ids) - 1)
    found = movie_ids[cols] == ids
    order = np.lexsort((cols[found], rows[found]))
    return rows[found][order], cols[found][order]


def watched_positions(users: pd.DataFrame, movie_ids: np.ndarray) -> tuple[np.ndarray, ...]:
    """(offsets, rows, columns, liked): each user's watched movies as catalogue cells, users in order.

    `liked` flags the cells in the user's LIKED list, when the frame has one.
    """
    rows, cols = _cells(users[WATCHED], movie_ids)
    liked = np.zeros(len(rows), bool)
    if LIKED in users:
        liked_rows, liked_cols = _cells(users[LIKED], movie_ids)
        cells = rows * len(movie_ids) + cols
        liked = np.isin(cells, liked_rows * len(movie_ids) + liked_cols)
    offsets = np.searchsorted(rows, np.arange(len(users) + 1))
    return offsets, rows, cols, liked


def recommend_batch(scorer, users: pd.DataFrame, k: int, block: int) -> pd.DataFrame:
    """Top-k recommendations of a pandas batch of (userId, user_idx, watched[, liked]) rows."""
    movie_ids = scorer.movie_ids
    user_ids = users[C.USER_ID].to_numpy(dtype=np.int32)
    user_idx = users[C.USER_IDX].to_numpy(dtype=np.int64)
    offsets, watched_rows, watched_cols, watched_liked = watched_positions(users, movie_ids)
    parts = []
    for start in range(0, len(users), block):
        stop = min(start + block, len(users))
        span = slice(offsets[start], offsets[stop])
        cells = Block(user_idx[start:stop], watched_rows[span] - start, watched_cols[span], watched_liked[span])
        keys = scorer.keys(cells)
        rows, cols, scores, ranks = top_k(keys, k, scorer.tail)
        parts.append((rows + start, cols, scores, ranks))
    rows, cols, scores, ranks = (np.concatenate(p) for p in zip(*parts)) if parts else [np.empty(0, np.int64)] * 4
    return pd.DataFrame(
        {
            C.USER_ID: user_ids[rows],
            RANK: (ranks + 1).astype(np.int32),
            C.MOVIE_ID: movie_ids[cols].astype(np.int32),
            SCORE: np.asarray(scores, dtype=np.float32),
        }
    )


def top_k_lists(scorer, users: pd.DataFrame, k: int, block: int) -> dict[int, np.ndarray]:
    """userId -> the movieIds of the user's top-k, best first."""
    recommended = recommend_batch(scorer, users, k, block)
    return {int(user): group[C.MOVIE_ID].to_numpy() for user, group in recommended.groupby(C.USER_ID, sort=False)}
