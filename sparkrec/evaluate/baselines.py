"""The baselines the deep model is compared with, and what they share: the carve-out, the search, calibration.

Every baseline is fitted on the train split only and answers what the
evaluation asks of each model:

- `classify(rows)`: for a Spark DataFrame of split rows, a pandas frame of
  (userId, movieId, like_probability, like_predicted);
- `keys(block)`: the scorer interface of
  `sparkrec.score.stages`, a users x catalogue score matrix with watched cells at
  -inf, so the baselines' top-K lists come from the very selection code that
  ranks the deep model's.

Hyperparameters are chosen on a validation carve-out of train (`search`: a
grid, widened while the best value sits at an end of it); the chosen setting
is then refitted on all of train. This module holds most-popular and logistic
regression; `sparkrec.evaluate.als` the two MLlib ALS baselines, `sparkrec.evaluate.ease` EASE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from sparkrec.core import columns as C
from sparkrec.core import metrics
from sparkrec.evaluate.tuning import RankingCarveOut
from sparkrec.score.scorers import Block

# Columns of the frames `classify` returns.
PROBABILITY = "like_probability"
PREDICTED = "like_predicted"

# Users whose catalogue scores are held at once when scoring pairs.
PAIR_BLOCK_USERS = 256


# --- the carve-out ------------------------------------------------------------


# --- the search ---------------------------------------------------------------


# --- calibration ----------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """P(like) = sigmoid(intercept + slope x score): Platt's logistic calibration of a model's score."""

    slope: float
    intercept: float

    @classmethod
    def fit(cls, scores: np.ndarray, likes: np.ndarray, iterations: int = 100) -> Calibration:
        """Maximum likelihood by Newton's method on the standardized score (a 1e-6 ridge keeps it finite
        on separable data)."""
        x = np.asarray(scores, dtype=np.float64)
        y = np.asarray(likes, dtype=np.float64)
        mean, scale = float(x.mean()), float(x.std()) or 1.0
        z = np.column_stack([np.ones_like(x), (x - mean) / scale])
        w = np.zeros(2)
        for _ in range(iterations):
            p = metrics.sigmoid(z @ w)
            gradient = z.T @ (p - y) + 1e-6 * len(y) * np.array([0.0, w[1]])
            hessian = (z * (p * (1 - p))[:, None]).T @ z + 1e-6 * len(y) * np.diag([0.0, 1.0])
            step = np.linalg.solve(hessian + 1e-12 * np.eye(2), gradient)
            w -= step
            if np.abs(step).max() < 1e-10:
                break
        return cls(slope=float(w[1] / scale), intercept=float(w[0] - w[1] * mean / scale))

    def probability(self, scores: np.ndarray) -> np.ndarray:
        return metrics.sigmoid(self.intercept + self.slope * np.asarray(scores, dtype=np.float64))


# --- the shared interface -----------------------------------------------------


def classified(frame: DataFrame, probability: Column, predicted: Column) -> pd.DataFrame:
    """The `classify` result: keys, P(like) and the 0/1 decision, collected to the driver."""
    return frame.select(
        C.USER_ID,
        C.MOVIE_ID,
        probability.cast("double").alias(PROBABILITY),
        predicted.cast("int").alias(PREDICTED),
    ).toPandas()


def positive_probability() -> Column:
    """P(class 1) out of Spark ML's probability vector."""
    return vector_to_array(F.col("probability"))[1]


class Baseline:
    """The scorer side shared by all baselines: `scores` per user, watched movies masked out."""

    name = "baseline"
    tail = ()  # the scores are final: nothing is applied after top-K selection

    def __init__(self, movie_ids: np.ndarray):
        self.movie_ids = movie_ids

    def classify(self, rows: DataFrame) -> pd.DataFrame:
        raise NotImplementedError

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        """Scores of the users (by user_idx) against every catalogue movie, higher is better."""
        raise NotImplementedError

    def keys(self, block: Block) -> np.ndarray:
        keys = np.array(self.scores(block.user_idx), dtype=np.float32)
        # Movies a baseline cannot score (NaN) are never recommended, like watched ones.
        keys[np.isnan(keys)] = -np.inf
        keys[block.watched_rows, block.watched_cols] = -np.inf
        return keys

    def pair_scores(self, user_idx: np.ndarray, movie_ids: np.ndarray) -> np.ndarray:
        """The score of each (user, movie) pair, read from the users' catalogue scores a block of users at a time."""
        columns = np.searchsorted(self.movie_ids, movie_ids)
        users, inverse = np.unique(user_idx, return_inverse=True)
        result = np.empty(len(user_idx), dtype=np.float64)
        for start in range(0, len(users), PAIR_BLOCK_USERS):
            block = users[start : start + PAIR_BLOCK_USERS]
            rows = np.flatnonzero((inverse >= start) & (inverse < start + len(block)))
            result[rows] = np.asarray(self.scores(block))[inverse[rows] - start, columns[rows]]
        return result

    def scorer(self) -> Baseline:
        return self

    def details(self) -> dict:
        return {}


class Calibrated(Baseline):
    """A ranking model that classifies likes by the logistic calibration of its pair scores."""

    calibration: Calibration

    def classify(self, rows: DataFrame) -> pd.DataFrame:
        frame = rows.select(C.USER_ID, C.MOVIE_ID, C.USER_IDX).toPandas()
        scores = self.pair_scores(frame[C.USER_IDX].to_numpy(), frame[C.MOVIE_ID].to_numpy())
        probability = self.calibration.probability(scores)
        return pd.DataFrame(
            {
                C.USER_ID: frame[C.USER_ID],
                C.MOVIE_ID: frame[C.MOVIE_ID],
                PROBABILITY: probability,
                PREDICTED: (probability >= 0.5).astype(int),
            }
        )


def calibrate(model: Baseline, carve_out: RankingCarveOut) -> Calibration:
    """The calibration of a model fitted on the fit part, on the carve-out's rated pairs."""
    validation = carve_out.validation
    scores = model.pair_scores(validation[C.USER_IDX].to_numpy(), validation[C.MOVIE_ID].to_numpy())
    return Calibration.fit(scores, validation[C.LIKE].to_numpy())


# --- most popular -------------------------------------------------------------


# --- logistic regression ("standard machine learning") ------------------------
