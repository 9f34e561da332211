"""EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019) on the driver.

The model is one item x item matrix B over the movies rated in train: with
G = X^T X the Gram matrix of the user x item matrix X (1 where the user liked
the movie, `dislike_weight` where they rated it without liking it) and
P = (G + lambda I)^-1, B = -P / diag(P) with a zero diagonal, and a user's
scores are their row of X times B. Each lambda costs one Cholesky inverse of
G + lambda I (LAPACK potrf + potri, a third of an LU inverse's work): one
eigendecomposition serves every lambda, but on ml-latest-small it costs 12
inverses and still leaves a matrix product per lambda, so it pays only from
about 30 lambdas (bench/ease_inverse.py, docs/results.md). Memory is a few
items^2 float32 matrices: the evaluate job skips EASE, saying why, above
`ease_max_items` movies.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse
from pyspark.sql import DataFrame

from sparkrec.core import columns as C
from sparkrec.core.runinfo import get_logger
from sparkrec.evaluate.baselines import Calibrated, Calibration, calibrate
from sparkrec.evaluate.tuning import RankingCarveOut, Skipped, Tuned, search
from sparkrec.score.scorers import Block

log = get_logger("ease")


class Ease(Calibrated):
    """Item-item scores from a user's rated-in-train movies (a disliked one counts `dislike_weight`);
    a movie without train ratings scores 0."""

    name = "ease"

    def __init__(
        self,
        movie_ids: np.ndarray,
        history: scipy.sparse.csr_matrix,
        weights: np.ndarray,
        columns: np.ndarray,
        dislike_weight: float,
        calibration: Calibration | None = None,
        tuned: Tuned | None = None,
    ):
        super().__init__(movie_ids)
        self.history = history  # users (by user_idx) x items: 1 where liked, dislike_weight where disliked
        self.weights = weights  # items x items, B
        self.columns = columns  # per catalogue movie, its item position, -1 when it has no train rating
        self.dislike_weight = dislike_weight
        self.calibration = calibration
        self.tuned = tuned

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        return self._catalogue_scores(np.asarray(self.history[user_idx] @ self.weights))

    def keys(self, block: Block) -> np.ndarray:
        """Scores from the block's watched movies, whoever the users are: a user EASE was not fitted on
        (the evaluation's held-out users) is scored from their history like any other."""
        items = self.columns[block.watched_cols]
        known = items >= 0
        values = signal(block.watched_liked[known], self.dislike_weight)
        rows = scipy.sparse.csr_matrix(
            (values, (block.watched_rows[known], items[known])),
            shape=(len(block.user_idx), self.weights.shape[0]),
        )
        keys = self._catalogue_scores(np.asarray(rows @ self.weights))
        keys[block.watched_rows, block.watched_cols] = -np.inf
        return keys

    def _catalogue_scores(self, item_scores: np.ndarray) -> np.ndarray:
        scores = np.zeros((len(item_scores), len(self.movie_ids)), dtype=np.float32)
        known = self.columns >= 0
        scores[:, known] = item_scores[:, self.columns[known]]
        return scores

    def details(self) -> dict:
        return {**self.tuned.details(), "items": int(self.weights.shape[0])}


def weights(gram: np.ndarray, lam: float) -> np.ndarray:
    """B = -P / diag(P), zero diagonal, P = (gram + lam I)^-1, in the dtype of `gram`.

    Built in one items x items array besides `gram`: factor, inverse and B overwrite each other.
    """
    factor, lower = scipy.linalg.cho_factor(
        gram + lam * np.eye(len(gram), dtype=gram.dtype), overwrite_a=True, check_finite=False
    )
    potri = scipy.linalg.get_lapack_funcs("potri", (factor,))
    inverse, info = potri(factor, lower=lower, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"the inverse of the regularized Gram matrix failed (potri info {info})")
    _mirror(inverse, lower)
    inverse /= -np.diag(inverse).copy()[None, :]
    np.fill_diagonal(inverse, 0.0)
    return inverse


def _mirror(matrix: np.ndarray, lower: bool, block: int = 2048) -> None:
    """Copy the triangle LAPACK filled onto the other one, in place, a band of columns at a time."""
    size = len(matrix)
    for start in range(0, size, block):
        stop = min(start + block, size)
        square = matrix[start:stop, start:stop]
        if lower:
            matrix[start:stop, stop:] = matrix[stop:, start:stop].T
            square[...] = np.tril(square) + np.tril(square, -1).T
        else:
            matrix[stop:, start:stop] = matrix[start:stop, stop:].T
            square[...] = np.triu(square) + np.triu(square, 1).T


def signal(liked: np.ndarray, dislike_weight: float) -> np.ndarray:
    """A rating's cell in X: 1 for a liked movie, `dislike_weight` for one rated but not liked."""
    return np.where(liked, np.float32(1.0), np.float32(dislike_weight)).astype(np.float32)


class Matrix:
    """The user x item matrix of some rated pairs (`signal` of their like labels), over the movies among them."""

    def __init__(self, pairs: pd.DataFrame, users: int, dislike_weight: float):
        self.items = np.unique(pairs[C.MOVIE_IDX].to_numpy())
        position = np.searchsorted(self.items, pairs[C.MOVIE_IDX].to_numpy())
        values = signal(pairs[C.LIKE].to_numpy() == 1, dislike_weight)
        self.history = scipy.sparse.csr_matrix(
            (values, (pairs[C.USER_IDX].to_numpy(), position)), shape=(users, len(self.items))
        )

    def gram(self) -> np.ndarray:
        return np.asarray((self.history.T @ self.history).todense(), dtype=np.float32)

    def columns(self, catalogue: pd.DataFrame) -> np.ndarray:
        """Per catalogue movie, its position among the items, -1 when it is not one of them."""
        movie_idx = catalogue[C.MOVIE_IDX].to_numpy()
        position = np.minimum(np.searchsorted(self.items, movie_idx), len(self.items) - 1)
        return np.where(self.items[position] == movie_idx, position, -1)


def _pairs(frame: DataFrame) -> pd.DataFrame:
    return frame.select(C.USER_IDX, C.MOVIE_IDX, C.LIKE).toPandas()


def fit_ease(
    train: DataFrame,
    catalogue: pd.DataFrame,
    vocab_sizes: dict[str, int],
    carve_out: RankingCarveOut,
    lambdas: list[float],
    dislike_weights: list[float],
    max_items: int,
    widen: int,
) -> Ease:
    """Search lambda and the disliked cells' weight by NDCG on the carve-out, calibrate there, refit on all
    of train.

    Raises Skipped, with the reason, when train rates more than `max_items` movies.
    """
    pairs, users = _pairs(train), vocab_sizes["user"]
    items = len(np.unique(pairs[C.MOVIE_IDX].to_numpy()))
    if items > max_items:
        reason = (
            f"train rates {items:,} movies, above ease_max_items={max_items:,} "
            f"(the Gram matrix alone would take {items**2 * 4 / 2**30:.1f} GiB)"
        )
        log.warning("ease skipped: %s", reason)
        raise Skipped(reason)
    movie_ids = catalogue[C.MOVIE_ID].to_numpy()
    fit_pairs = _pairs(carve_out.fit)
    # The grid runs weight by weight (the first axis varies slowest): one Gram matrix at a time.
    current: dict[float, tuple[Matrix, np.ndarray]] = {}

    def fit(setting: dict) -> Ease:
        weight = setting["dislike_weight"]
        if weight not in current:
            current.clear()
            part = Matrix(fit_pairs, users, weight)
            current[weight] = (part, part.gram())
        part, gram = current[weight]
        return Ease(movie_ids, part.history, weights(gram, setting["lambda"]), part.columns(catalogue), weight)

    tuned = search(
        "ease",
        {"dislike_weight": dislike_weights, "lambda": lambdas},
        fit,
        carve_out.ndcg,
        carve_out.measure,
        maximize=True,
        widen=widen,
        limits={"dislike_weight": 1.0},
    )
    calibration = calibrate(tuned.model, carve_out)
    tuned.model = None  # free the fit part's matrices before building the final ones
    current.clear()
    weight = tuned.setting["dislike_weight"]
    everything = Matrix(pairs, users, weight)
    final = weights(everything.gram(), tuned.setting["lambda"])
    return Ease(movie_ids, everything.history, final, everything.columns(catalogue), weight, calibration, tuned)
