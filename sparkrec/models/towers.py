"""The two-tower model in numpy: user vectors from histories, dot-product keys, the like head.

Scoring workers and the evaluation run the model from these arrays without
TensorFlow. The movie side is computed once, on the driver, by the model's
own movie tower (`movie_vectors`); the user tower and the heads are a few
matrix products, written here layer for layer (sparkrec.models.twotower documents
the layers; tests hold the two within 1e-5 of each other).

A user's history is given as CSR arrays: `offsets` (users + 1), and per
rating its movie index and like label. Movie index 0 (a movie outside the
vocabulary) contributes nothing, as in the Keras tower.

A user the model never trained on can also be fitted to their own history
at scoring time (`fold_in`): the tower's vector is where a few gradient
steps start. Training fitted the towers to the trained users' ratings, and
the tower alone places a new user less well than it places them
(docs/results.md, "Users outside the training sample").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse

from sparkrec.core import columns as C
from sparkrec.core import metrics

# The saved model's name and its user-side inputs and ranking output (sparkrec.models.twotower builds them).
MODEL_NAME = "twotower"
HISTORY_MOVIE = "history_movie"
HISTORY_LIKE = "history_like"
USER_INPUTS = (HISTORY_MOVIE, HISTORY_LIKE)
SCORE_OUTPUT = "score"


def is_twotower(model) -> bool:
    return model.name == MODEL_NAME


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0, out=x)


@dataclass(frozen=True)
class FoldIn:
    """Gradient steps fitting a user outside the training sample to their history (0 steps: the tower's vector).

    In the objective a rated movie the user liked weighs 1 and one they did
    not like `dislike_weight`: the lists are judged by the movies a user will
    like (docs/results.md). The softmax reads the movie vectors' projections
    onto their fewest principal directions that keep `energy` of their squared
    singular values (`principal_basis`; 1: the vectors themselves).
    """

    steps: int = 2
    rate: float = 0.7
    dislike_weight: float = 0.25
    energy: float = 0.99


def principal_basis(movies: np.ndarray, energy: float) -> np.ndarray | None:
    """(d, r) orthonormal columns: the fewest principal directions of `movies`' rows that keep `energy` of their
    squared singular values; None (the steps run in the full space) at energy 1, or when the rows are all
    zero or not all finite (an SVD would fail).

    A trained model's movie vectors are close to low-rank (at the paper's protocol 84 of 256
    directions keep 99%, docs/results.md), and a fold-in step's two matrix products cost in
    proportion to the width they run at.
    """
    if energy >= 1.0 or not np.isfinite(movies).all():
        return None
    _, singular, directions = np.linalg.svd(movies.astype(np.float64), full_matrices=False)
    total = np.sum(singular**2)
    if not total:
        return None
    rank = min(int(np.searchsorted(np.cumsum(singular**2) / total, energy)) + 1, len(singular))
    return np.ascontiguousarray(directions[:rank].T, dtype=np.float32)


def fold_in(
    vectors: np.ndarray,
    rated: scipy.sparse.csr_matrix,
    movies: np.ndarray,
    bias: np.ndarray,
    settings: FoldIn,
    basis: np.ndarray | None = None,
) -> np.ndarray:
    """`vectors` after gradient steps on the weighted mean log-probability of each user's rated movies.

    `movies` and `bias` are the softmax's movies (rows of the scored
    catalogue), `rated` is (users, those movies): each movie the user rated
    is a stored entry, its value its weight in the mean (> 0); a user who
    rated none keeps their vector. Each rated movie's
    probability is a softmax over itself and the movies the user did not rate,
    as in training, where each target competes with every movie outside the
    history it is predicted from: the user's other rated movies are not its
    rivals. (With them as rivals, the fitted users ranked lower on the
    held-out carve of docs/results.md.) The gradient of one user's objective
    is the weighted mean vector of their rated movies minus the weighted mean,
    over them, of the vector each one's softmax expects, so each step pulls
    the user towards what they rated and away from what the model would rank
    above it.

    With a `basis` (d, r), `movies` are given in its coordinates (movie
    vectors @ basis): the steps then ascend the objective of the movies'
    projections onto it, and move each user within it.
    """
    fitted = np.flatnonzero(np.diff(rated.indptr))
    vectors = vectors.copy()
    if not settings.steps or not len(fitted):
        return vectors
    own_rows = rated[fitted]
    rows = np.repeat(np.arange(len(fitted)), np.diff(own_rows.indptr))
    columns = own_rows.indices
    # float32 throughout: a float64 factor would convert the whole movie table at every call.
    share = (own_rows.data / np.bincount(rows, own_rows.data, len(fitted))[rows]).astype(np.float32)
    start = vectors[fitted]
    user = start if basis is None else start @ basis
    for _ in range(settings.steps):
        # exp(key - row max) in place: one pass fewer over the (users x movies) block than a softmax.
        weights = user @ movies.T
        weights += bias
        weights -= weights.max(axis=1, keepdims=True)
        # exp below about -87 is a float32 denormal or zero, which numpy took 8 times as long over (21 ms
        # against 2.6 ms for a 256 x 15,414 block here); such terms are under 1e-34 of the largest: nothing.
        np.maximum(weights, -80.0, out=weights)
        np.exp(weights, out=weights)
        own = weights[rows, columns]
        weights[rows, columns] = 0.0
        unrated = weights.sum(axis=1)
        # Rated movie i's softmax over i and the unrated movies has the gradient
        # (1 - its probability) x (v_i - the unrated movies' softmax mean vector): a movie already
        # far above them pulls no more. A user who rated every movie has no unrated one: no pull.
        pull = share * unrated[rows] / (unrated[rows] + own)
        toward = scipy.sparse.csr_matrix((pull, (rows, columns)), shape=weights.shape) @ movies
        unrated_mean = (weights @ movies) / np.maximum(unrated, np.finfo(np.float32).tiny)[:, None]
        user += settings.rate * (
            toward - np.bincount(rows, pull, len(fitted)).astype(np.float32)[:, None] * unrated_mean
        )
    vectors[fitted] = user if basis is None else start + (user - start @ basis) @ basis.T
    return vectors


@dataclass
class Dense:
    kernel: np.ndarray
    bias: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x @ self.kernel + self.bias


@dataclass
class TwoTower:
    """A trained two-tower model as arrays; `movies` and `movie_bias` are rows of the scored catalogue."""

    history_embedding: np.ndarray  # movie_idx -> row
    user_hidden: Dense
    user_vector: Dense
    head_hidden: Dense
    like_logit: Dense
    rating_unit: Dense
    movies: np.ndarray  # (catalogue, d) float32
    movie_bias: np.ndarray  # (catalogue,) float32

    def user_vectors(self, offsets: np.ndarray, movies: np.ndarray, likes: np.ndarray) -> np.ndarray:
        """(users, d): the user tower on each user's whole history (CSR `offsets` over `movies`/`likes`)."""
        users = len(offsets) - 1
        owner = np.repeat(np.arange(users), np.diff(offsets))
        present = (movies != C.UNKNOWN_INDEX).astype(np.float32)
        shape = (users, len(self.history_embedding))
        pooled = []
        counts = []
        for weight in (present * likes, present * (1.0 - likes)):
            # A sparse (users x movie vocabulary) product with the embedding table sums each user's
            # rows: np.add.at took 60% of the full-scale score stage's CPU, and gathering the rows
            # first held a (ratings x d) block, 18 GB for ML-20M's train split at d = 256.
            sums = scipy.sparse.csr_matrix((weight, (owner, movies)), shape=shape)
            count = np.asarray(sums.sum(axis=1), dtype=np.float32).reshape(-1)
            pooled.append(np.asarray(sums @ self.history_embedding, dtype=np.float32) / np.maximum(count, 1.0)[:, None])
            counts.append(np.log1p(count)[:, None])
        features = np.concatenate(pooled + counts, axis=1)
        return self.user_vector(_relu(self.user_hidden(features))).astype(np.float32)

    def keys(self, vectors: np.ndarray) -> np.ndarray:
        """(users, catalogue) ranking scores: dot products plus the movie bias."""
        keys = vectors @ self.movies.T
        keys += self.movie_bias
        return keys

    def heads(
        self, vectors: np.ndarray, users: np.ndarray, columns: np.ndarray, block: int = 65536
    ) -> tuple[np.ndarray, np.ndarray]:
        """(P(like), predicted stars) of each (user vector `vectors[users[i]]`, catalogue column `columns[i]`) row.

        In blocks of rows: all at once, ML-20M's 2 million test rows held 10 GB of head inputs at d = 256.
        """
        like = np.empty(len(columns))
        stars = np.empty(len(columns))
        low, high = C.RATING_RANGE
        for start in range(0, len(columns), block):
            user = vectors[users[start : start + block]]
            movie = self.movies[columns[start : start + block]]
            hidden = _relu(self.head_hidden(np.concatenate([user, movie, user * movie], axis=1)))
            like[start : start + block] = metrics.sigmoid(self.like_logit(hidden)[:, 0].astype(np.float64))
            unit = metrics.sigmoid(self.rating_unit(hidden)[:, 0].astype(np.float64))
            stars[start : start + block] = unit * (high - low) + low
        return like, stars
