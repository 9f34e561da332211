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

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from pyspark.ml.classification import LogisticRegression, LogisticRegressionModel
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.feature import OneHotEncoder, OneHotEncoderModel, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkrec.core import columns as C
from sparkrec.core import metrics, ranking
from sparkrec.prepare import sampling
from sparkrec.score.scorers import Block, top_k_lists
from sparkrec.core.runinfo import get_logger

# Columns of the frames `classify` returns.
PROBABILITY = "like_probability"
PREDICTED = "like_predicted"

_PREDICTION = "prediction"  # Spark ML's output column of ALS and LogisticRegression
_FEATURES = "features"
# Users whose catalogue scores are held at once when scoring pairs.
PAIR_BLOCK_USERS = 256
log = get_logger("baselines")


# --- the carve-out ------------------------------------------------------------


def carve_validation(train: DataFrame, fraction: float, seed: int) -> tuple[DataFrame, DataFrame]:
    """Split train into (fit, validation) by a seeded hash of each rating.

    The timestamp is part of the hash so the carve-out is independent of the
    prepare job's (userId, movieId) hash split even with an equal seed:
    hashing the same keys with the same seed would select no train row.
    """
    draw = sampling.unit_hash(seed, C.USER_ID, C.MOVIE_ID, C.TIMESTAMP)
    return train.filter(draw >= fraction), train.filter(draw < fraction)


@dataclass
class RankingCarveOut:
    """The carve-out as the ranking baselines are tuned on it: the evaluate job's protocol inside train.

    Each user with a liked carve-out movie ranks every catalogue movie not in
    their fit part; relevant = their liked carve-out movies.
    """

    fit: DataFrame  # train without the carve-out (cached)
    validation: pd.DataFrame  # userId, movieId, user_idx, like of the carve-out
    users: pd.DataFrame  # userId, user_idx, watched (fit-part movieIds) of the users with a liked carve-out movie
    relevant: dict[int, set]
    k: int
    block: int

    def ndcg(self, scorer) -> float:
        lists = top_k_lists(scorer, self.users, self.k, self.block)
        return ranking.mean_ranking_metrics(lists, self.relevant, self.k)[f"ndcg@{self.k}"]

    @property
    def measure(self) -> str:
        return f"ndcg@{self.k}"


# --- the search ---------------------------------------------------------------


class Skipped(RuntimeError):
    """A baseline that is not fitted in this run; the message says why, and the report shows it."""


class FitFailed(Skipped):
    """A model's solver could not fit one setting (the message says why); the search goes on without it,
    and the baseline is skipped only when no setting could be fitted."""


def grid_of(**options: list) -> list[dict]:
    """Every combination of the option lists, e.g. grid_of(rank=[10, 30], reg_param=[0.1])."""
    names = list(options)
    return [dict(zip(names, values)) for values in itertools.product(*options.values())]


def _beyond(edge, neighbour):
    """The next value past `edge` on the geometric step from `neighbour`; None where there is none
    (0, or 1 on an integer axis, is as far down as a setting goes)."""
    if edge <= 0 or neighbour <= 0:
        return None
    value = edge * edge / neighbour
    if isinstance(edge, int) and isinstance(neighbour, int):
        value = max(1, round(value))
    else:
        value = float(f"{value:.6g}")  # 0.001, not 0.0009999999999999998
    return None if value == edge else value


@dataclass
class Tuned:
    """The outcome of `search`: the chosen setting, its model on the fit part, and every setting tried."""

    setting: dict
    model: object
    grid: list[dict]  # each setting tried with its "validation" value, in the order tried
    measure: str  # what "validation" is
    widened: dict[str, list] = field(default_factory=dict)  # values tried beyond the configured ones
    at_edge: list[str] = field(default_factory=list)  # axes still chosen at an end of what was tried

    def details(self) -> dict:
        return {"chosen": self.setting, "grid": self.grid, "validation": self.measure,
                "widened": self.widened, "at_edge": self.at_edge}


def search(
    name: str, axes: dict[str, list], fit: Callable[[dict], object], measure: Callable[[object], float],
    measure_name: str, maximize: bool, widen: int, limits: dict[str, float] | None = None,
) -> Tuned:
    """Fit every combination of the axes' values and keep the best by the validation measure.

    While the best value of an axis is an end of the values tried on it, one
    value further along the axis (the geometric step of its two outermost
    values) is tried at the best values of the others, up to `widen` more
    fits in all; `limits` caps how far an axis may grow (a compute bound, as
    ALS's cost grows with the cube of its rank): a step that would pass the
    cap tries the cap itself. An axis still at an end
    afterwards is named in `at_edge`. A setting whose fit raises FitFailed
    is kept in the grid with its reason and no validation value; FitFailed
    is raised when no setting could be fitted.
    """
    limits = limits or {}
    sign = 1.0 if maximize else -1.0
    tried = {axis: list(values) for axis, values in axes.items()}
    grid, best = [], None

    def run(setting: dict) -> None:
        nonlocal best
        try:
            model = fit(setting)
        except FitFailed as error:
            grid.append({**setting, "validation": None, "failed": str(error)})
            log.warning("%s %s: not fitted: %s", name, setting, error)
            return
        value = float(measure(model))
        grid.append({**setting, "validation": value})
        log.info("%s %s: validation %s %.4f", name, setting, measure_name, value)
        if best is None or sign * value > sign * best[2]:
            best = (setting, model, value)

    for setting in grid_of(**axes):
        run(setting)
    if best is None:
        raise FitFailed(f"no setting of its grid could be fitted ({grid[-1]['failed']})")
    widened: dict[str, list] = {}

    def edges() -> list[tuple[str, object]]:
        """(axis, next value, or the limit it would pass, or None at the limit) for each axis whose best value
        is an end of those tried."""
        found = []
        for axis, values in tried.items():
            ordered = sorted(values)
            chosen = best[0][axis]
            if len(ordered) < 2 or chosen not in (ordered[0], ordered[-1]):
                continue
            value = _beyond(chosen, ordered[1] if chosen == ordered[0] else ordered[-2])
            if value is not None:
                limit = limits.get(axis, math.inf)
                if value > limit:
                    value = limit if chosen < limit else None
                found.append((axis, value))
        return found

    while widen > 0:
        steps = [(axis, value) for axis, value in edges() if value is not None]
        if not steps:
            break
        for axis, value in steps[:widen]:
            log.info("%s: %s=%s is at the end of %s: trying %s", name, axis, best[0][axis], sorted(tried[axis]), value)
            tried[axis].append(value)
            widened.setdefault(axis, []).append(value)
            run({**best[0], axis: value})
        widen -= len(steps[:widen])
    at_edge = [axis for axis, _ in edges()]
    if at_edge:
        log.warning("%s: %s still at the end of the values tried; widen the grid", name, ", ".join(at_edge))
    return Tuned(best[0], best[1], grid, measure_name, widened, at_edge)


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
        return pd.DataFrame({
            C.USER_ID: frame[C.USER_ID],
            C.MOVIE_ID: frame[C.MOVIE_ID],
            PROBABILITY: probability,
            PREDICTED: (probability >= 0.5).astype(int),
        })


def calibrate(model: Baseline, carve_out: RankingCarveOut) -> Calibration:
    """The calibration of a model fitted on the fit part, on the carve-out's rated pairs."""
    validation = carve_out.validation
    scores = model.pair_scores(validation[C.USER_IDX].to_numpy(), validation[C.MOVIE_ID].to_numpy())
    return Calibration.fit(scores, validation[C.LIKE].to_numpy())


# --- most popular -------------------------------------------------------------


class Popular(Baseline):
    """Ranks by train like-count; P(like) is the movie's train like-rate, shrunk towards the global rate.

    With `prior` pseudo-ratings at the global rate, a movie no one rated in
    train gets the global rate, i.e. the global majority class.
    """

    name = "popular"

    def __init__(self, movie_ids: np.ndarray, stats: DataFrame, likes: np.ndarray, global_rate: float):
        super().__init__(movie_ids)
        self.stats = stats  # movieId, like_probability
        self.likes = likes  # train like-count per catalogue movie
        self.global_rate = global_rate

    def classify(self, rows: DataFrame) -> pd.DataFrame:
        joined = rows.join(F.broadcast(self.stats), C.MOVIE_ID, "left")
        probability = F.coalesce(F.col(PROBABILITY), F.lit(self.global_rate))
        return classified(joined, probability, probability >= 0.5)

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.likes, (len(user_idx), len(self.likes)))

    def details(self) -> dict:
        return {"train_like_rate": self.global_rate}


def fit_popular(train: DataFrame, catalogue: pd.DataFrame, prior: float) -> Popular:
    global_rate = float(train.agg(F.avg(C.LIKE)).first()[0])
    counts = train.groupBy(C.MOVIE_ID).agg(F.sum(C.LIKE).alias("likes"), F.count(F.lit(1)).alias("ratings"))
    shrunk = (F.col("likes") + F.lit(prior * global_rate)) / (F.col("ratings") + F.lit(prior))
    stats = counts.select(C.MOVIE_ID, "likes", shrunk.alias(PROBABILITY)).cache()
    likes = catalogue[[C.MOVIE_ID]].merge(stats.select(C.MOVIE_ID, "likes").toPandas(), on=C.MOVIE_ID, how="left")
    return Popular(
        catalogue[C.MOVIE_ID].to_numpy(), stats.drop("likes"), likes["likes"].fillna(0).to_numpy(np.float64), global_rate
    )


# --- logistic regression ("standard machine learning") ------------------------

# One-hot blocks of the feature vector, in order; the 20 genre flags follow.
_ONE_HOT = ((C.USER_IDX, "user"), (C.MOVIE_IDX, "movie"), (C.YEAR_IDX, "year"))


class Logistic(Baseline):
    """Logistic regression on one-hot user, movie and release year plus the genre multi-hot flags.

    The logit is a user term plus a movie term, so a user's catalogue scores
    are read off the coefficients without Spark.
    """

    name = "logistic"

    def __init__(self, movie_ids: np.ndarray, encoder: OneHotEncoderModel, model: LogisticRegressionModel,
                 terms: tuple[np.ndarray, np.ndarray], tuned: Tuned):
        super().__init__(movie_ids)
        self.encoder = encoder
        self.model = model
        self.user_terms, self.movie_terms = terms  # by user_idx; by catalogue row, intercept included
        self.tuned = tuned

    def classify(self, rows: DataFrame) -> pd.DataFrame:
        scored = self.model.transform(_features(self.encoder, rows))
        return classified(scored, positive_probability(), F.col(_PREDICTION))

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        return self.user_terms[user_idx][:, None] + self.movie_terms[None, :]

    def details(self) -> dict:
        return self.tuned.details()


def _encoder(spark: SparkSession, vocab_sizes: dict[str, int]) -> OneHotEncoderModel:
    """One-hot encoders sized by the vocabularies, so every index, 0 (unknown) included, has a column.

    Fitted on the index ranges rather than on train, which may miss the
    highest indices (movies seen only in test or only in the catalogue).
    """
    widest = max(vocab_sizes[name] for _, name in _ONE_HOT)
    ranges = spark.range(widest).select(
        *[F.least(F.col("id"), F.lit(vocab_sizes[name] - 1)).cast("int").alias(column) for column, name in _ONE_HOT]
    )
    encoder = OneHotEncoder(
        inputCols=[column for column, _ in _ONE_HOT],
        outputCols=[f"{column}_onehot" for column, _ in _ONE_HOT],
        dropLast=False,
    )
    return encoder.fit(ranges)


def _features(encoder: OneHotEncoderModel, frame: DataFrame) -> DataFrame:
    inputs = [*encoder.getOutputCols(), *C.GENRE_FLAG_COLUMNS]
    return VectorAssembler(inputCols=inputs, outputCol=_FEATURES).transform(encoder.transform(frame))


def _logistic(setting: dict, max_iter: int) -> LogisticRegression:
    # One-hot columns share a scale already; standardising would weaken the
    # penalty on rare users and movies, the ones most prone to overfit.
    return LogisticRegression(
        labelCol=C.LIKE, featuresCol=_FEATURES, regParam=setting["reg_param"], maxIter=max_iter, standardization=False,
    )


def _log_loss(model: LogisticRegressionModel, validation: DataFrame) -> float:
    evaluator = MulticlassClassificationEvaluator(metricName="logLoss", labelCol=C.LIKE)
    return evaluator.evaluate(model.transform(validation))


def _split_terms(
    model: LogisticRegressionModel, vocab_sizes: dict[str, int], catalogue: pd.DataFrame,
) -> tuple[np.ndarray, np.ndarray]:
    """The per-user and per-catalogue-movie parts of the logit, from the coefficient blocks."""
    weights = model.coefficients.toArray()
    bounds = np.cumsum([0] + [vocab_sizes[name] for _, name in _ONE_HOT])
    user_w, movie_w, year_w = (weights[start:end] for start, end in zip(bounds[:-1], bounds[1:]))
    flags = catalogue[list(C.GENRE_FLAG_COLUMNS)].to_numpy(dtype=np.float64)
    movie_terms = (
        movie_w[catalogue[C.MOVIE_IDX].to_numpy()]
        + year_w[catalogue[C.YEAR_IDX].to_numpy()]
        + flags @ weights[bounds[-1]:]
        + model.intercept
    )
    return user_w, movie_terms


def fit_logistic(
    spark: SparkSession, train: DataFrame, catalogue: pd.DataFrame, vocab_sizes: dict[str, int],
    reg_params: list[float], max_iter: int, validation_fraction: float, seed: int, widen: int,
) -> Logistic:
    """Choose regParam by validation log loss, then refit on all of train."""
    encoder = _encoder(spark, vocab_sizes)
    featured = _features(encoder, train).select(_FEATURES, C.LIKE, C.USER_ID, C.MOVIE_ID, C.TIMESTAMP).cache()
    fit_part, validation = carve_validation(featured, validation_fraction, seed)
    tuned = search(
        "logistic", {"reg_param": reg_params},
        lambda s: _logistic(s, max_iter).fit(fit_part),
        lambda m: _log_loss(m, validation), "log loss", maximize=False, widen=widen,
    )
    model = _logistic(tuned.setting, max_iter).fit(featured)
    terms = _split_terms(model, vocab_sizes, catalogue)
    return Logistic(catalogue[C.MOVIE_ID].to_numpy(), encoder, model, terms, tuned)
