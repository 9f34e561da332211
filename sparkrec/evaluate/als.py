"""The two Spark MLlib ALS baselines: explicit ratings (`als`, a rating regressor) and implicit feedback
(`als_implicit`, the top-N recommender a Spark user reaches for first).

Both factorize over the dense user and movie indices and rank a user's
catalogue by the dot products of the learned factors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.ml.evaluation import RegressionEvaluator
from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkrec.core import columns as C
from sparkrec.core import storage
from sparkrec.evaluate.baselines import PREDICTED, PROBABILITY, Baseline, Calibrated, Calibration, calibrate
from sparkrec.evaluate.tuning import FitFailed, RankingCarveOut, Tuned, carve_validation, search

_PREDICTION = "prediction"  # ALSModel's output column
PREFERENCE = "preference"  # the implicit model's input signal
# What an implicit rating says (conf/evaluate.yaml, als_implicit_signal): MLlib reads a positive
# value as "preferred" with confidence 1 + alpha x value, and a negative one as "not preferred"
# with confidence 1 + alpha x |value|.
SIGNALS = ("binary", "rating", "like")


class Factors(Baseline):
    """Scores are the dot products of a user's factors with every catalogue movie's."""

    def __init__(self, movie_ids: np.ndarray, user_factors: np.ndarray, item_factors: np.ndarray):
        super().__init__(movie_ids)
        self.user_factors = user_factors  # by user_idx
        self.item_factors = item_factors  # by catalogue row

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        return self.user_factors[user_idx] @ self.item_factors.T


def factor_tables(
    model: ALSModel, vocab_sizes: dict[str, int], catalogue: pd.DataFrame, missing: float
) -> tuple[np.ndarray, np.ndarray]:
    """User factors by user_idx and item factors by catalogue row; `missing` fills the rows of
    indices ALS never saw (index 0, unknown, among them: no train row carries it)."""
    tables = []
    for factors, size in ((model.userFactors, vocab_sizes["user"]), (model.itemFactors, vocab_sizes["movie"])):
        frame = factors.toPandas()
        table = np.full((size, model.rank), missing)
        table[frame["id"].to_numpy()] = np.stack(frame["features"].to_numpy())
        tables.append(table)
    users, items = tables
    return users, items[catalogue[C.MOVIE_IDX].to_numpy()]


@contextmanager
def checkpoints(spark: SparkSession, directory: str) -> Iterator[None]:
    """ALS cuts its lineage every checkpointInterval iterations by checkpointing into `directory`,
    which is removed afterwards; without a directory it would not, and long runs overflow the stack."""
    spark.sparkContext.setCheckpointDir(directory)
    try:
        yield
    finally:
        storage.delete(spark, directory)


def _fit(frame: DataFrame, setting: dict, max_iter: int, seed: int, blocks: int, implicit: bool) -> ALSModel:
    """MLlib ALS with `setting` fitted on `frame`; FitFailed where its solver cannot (a singular system)."""
    estimator = ALS(
        rank=setting["rank"],
        regParam=setting["reg_param"],
        alpha=setting.get("alpha", 1.0),
        implicitPrefs=implicit,
        maxIter=max_iter,
        seed=seed,
        numUserBlocks=blocks,
        numItemBlocks=blocks,
        userCol=C.USER_IDX,
        itemCol=C.MOVIE_IDX,
        ratingCol=PREFERENCE if implicit else C.RATING,
        coldStartStrategy="nan",
    )
    try:
        return estimator.fit(frame)
    except Exception as error:  # py4j's error, or PySpark's conversion of it: the Java class names the cause
        # A user (or movie) whose normal equations have no regularization left (implicit, alpha 0: one
        # who only disliked) and whose other side's factors collapsed under a strong regParam.
        if "SingularMatrixException" not in str(error):
            raise
        raise FitFailed(
            "MLlib ALS: a normal-equation matrix is singular (LAPACK dppsv: not positive definite)"
        ) from None


# --- explicit ratings -----------------------------------------------------------


class Als(Factors):
    """Explicit-rating matrix factorisation.

    A predicted rating at or above the like threshold is a like. P(like) is
    the predicted rating through a logistic calibration fitted on the
    validation carve-out, so that AUC and log loss are defined. A pair ALS
    cannot score (a movie absent from train) falls back to the user's mean
    train rating; such movies are never recommended.
    """

    name = "als"

    def __init__(
        self,
        movie_ids: np.ndarray,
        model: ALSModel,
        calibration: Calibration,
        user_means: DataFrame,
        global_mean: float,
        like_threshold: float,
        tables: tuple[np.ndarray, np.ndarray],
        tuned: Tuned,
    ):
        super().__init__(movie_ids, *tables)
        self.model = model
        self.calibration = calibration
        self.user_means = user_means  # user_idx, user_mean
        self.global_mean = global_mean
        self.like_threshold = like_threshold
        self.tuned = tuned

    def classify(self, rows: DataFrame) -> pd.DataFrame:
        scored = self.model.transform(rows).join(F.broadcast(self.user_means), C.USER_IDX, "left")
        fallback = F.coalesce(F.col("user_mean"), F.lit(self.global_mean))
        rating = F.when(F.isnan(_PREDICTION), fallback).otherwise(F.col(_PREDICTION))
        frame = scored.select(C.USER_ID, C.MOVIE_ID, rating.alias(_PREDICTION)).toPandas()
        predicted = frame.pop(_PREDICTION).to_numpy()
        frame[PROBABILITY] = self.calibration.probability(predicted)
        frame[PREDICTED] = (predicted >= self.like_threshold).astype(int)
        return frame

    def details(self) -> dict:
        return self.tuned.details()


def _rmse(model: ALSModel, validation: DataFrame) -> float:
    predictions = model.transform(validation).filter(~F.isnan(_PREDICTION))
    return RegressionEvaluator(metricName="rmse", labelCol=C.RATING, predictionCol=_PREDICTION).evaluate(predictions)


def _rating_calibration(model: ALSModel, validation: DataFrame) -> Calibration:
    rated = model.transform(validation).filter(~F.isnan(_PREDICTION)).select(_PREDICTION, C.LIKE).toPandas()
    return Calibration.fit(rated[_PREDICTION].to_numpy(), rated[C.LIKE].to_numpy())


def fit_als(
    train: DataFrame,
    catalogue: pd.DataFrame,
    vocab_sizes: dict[str, int],
    axes: dict[str, list],
    max_iter: int,
    validation_fraction: float,
    seed: int,
    like_threshold: float,
    blocks: int,
    widen: int,
    max_rank: int,
) -> Als:
    """Search rank x regParam by validation RMSE, calibrate on validation, refit on all of train.

    `blocks` partitions users and items; a block per core avoids the
    scheduling cost of Spark's default of ten on a small machine. Widening
    never takes the rank past `max_rank`.
    """
    fit_part, validation = carve_validation(train, validation_fraction, seed)
    # evaluate's ranking carve-out (als_implicit, ease) may hold these very rows cached already,
    # and a second cache() of them would only warn.
    if fit_part.storageLevel == StorageLevel.NONE:
        fit_part = fit_part.cache()
    validation = validation.cache()
    tuned = search(
        "als",
        axes,
        lambda s: _fit(fit_part, s, max_iter, seed, blocks, implicit=False),
        lambda m: _rmse(m, validation),
        "rmse",
        maximize=False,
        widen=widen,
        limits={"rank": max_rank},
    )
    calibration = _rating_calibration(tuned.model, validation)
    model = _fit(train, tuned.setting, max_iter, seed, blocks, implicit=False)
    return Als(
        movie_ids=catalogue[C.MOVIE_ID].to_numpy(),
        model=model,
        calibration=calibration,
        user_means=train.groupBy(C.USER_IDX).agg(F.avg(C.RATING).alias("user_mean")).cache(),
        global_mean=float(train.agg(F.avg(C.RATING)).first()[0]),
        like_threshold=like_threshold,
        tables=factor_tables(model, vocab_sizes, catalogue, np.nan),
        tuned=tuned,
    )


# --- implicit feedback ----------------------------------------------------------


class AlsImplicit(Calibrated, Factors):
    """Implicit-feedback ALS (Hu, Koren and Volinsky 2008) on the rated pairs of train.

    Ranks by the factor dot product, P(the user would rate the movie); classifies
    likes by its logistic calibration on the carve-out. A movie without train
    ratings has zero factors: score 0, no evidence either way.
    """

    name = "als_implicit"

    def __init__(
        self,
        movie_ids: np.ndarray,
        tables: tuple[np.ndarray, np.ndarray],
        calibration: Calibration,
        tuned: Tuned,
        signal: str,
        iterations: dict[str, int],
    ):
        super().__init__(movie_ids, *tables)
        self.calibration = calibration
        self.tuned = tuned
        self.signal = signal
        self.iterations = iterations

    def details(self) -> dict:
        return {**self.tuned.details(), "signal": self.signal, **self.iterations}


def preference(frame: DataFrame, signal: str) -> DataFrame:
    """The implicit rating of each rated pair: 1 (binary), the stars (rating), or +1 / -1 for a like / dislike."""
    value = {"binary": F.lit(1.0), "rating": F.col(C.RATING), "like": F.when(F.col(C.LIKE) == 1, 1.0).otherwise(-1.0)}[
        signal
    ]
    return frame.select(C.USER_IDX, C.MOVIE_IDX, value.cast("float").alias(PREFERENCE))


def fit_als_implicit(
    train: DataFrame,
    catalogue: pd.DataFrame,
    vocab_sizes: dict[str, int],
    carve_out: RankingCarveOut,
    axes: dict[str, list],
    iterations: tuple[int, int],
    seed: int,
    blocks: int,
    signal: str,
    widen: int,
    max_rank: int,
) -> AlsImplicit:
    """Search rank x regParam x alpha by NDCG on the carve-out, calibrate there, refit on all of train.

    `iterations` is (search, final): the grid's fits compare settings after
    the first; the refit on all of train runs the second, enough to converge.
    Widening never takes the rank past `max_rank`.
    """
    search_iter, max_iter = iterations
    movie_ids = catalogue[C.MOVIE_ID].to_numpy()
    fit_part = preference(carve_out.fit, signal).cache()

    def fit(setting: dict) -> Factors:
        model = _fit(fit_part, setting, search_iter, seed, blocks, implicit=True)
        return Factors(movie_ids, *factor_tables(model, vocab_sizes, catalogue, 0.0))

    tuned = search(
        "als_implicit",
        axes,
        fit,
        carve_out.ndcg,
        carve_out.measure,
        maximize=True,
        widen=widen,
        limits={"rank": max_rank},
    )
    calibration = calibrate(tuned.model, carve_out)
    fit_part.unpersist()
    model = _fit(preference(train, signal), tuned.setting, max_iter, seed, blocks, implicit=True)
    tables = factor_tables(model, vocab_sizes, catalogue, 0.0)
    iterations = {"search_iter": search_iter, "max_iter": max_iter}
    return AlsImplicit(movie_ids, tables, calibration, tuned, signal, iterations)
