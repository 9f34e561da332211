"""The baselines the deep model is compared with: most-popular, Spark MLlib ALS, logistic regression.

Every baseline is fitted on the train split only and answers what the
evaluation asks of each model:

- `classify(rows)`: for a Spark DataFrame of split rows, a pandas frame of
  (userId, movieId, like_probability, like_predicted);
- `keys(user_idx, watched_rows, watched_cols)`: the scorer interface of
  `sparkrec.scoring`, a users x catalogue score matrix with watched cells at
  -inf, so the baselines' top-K lists come from the very selection code that
  ranks the deep model's.

Hyperparameters are chosen on a validation carve-out of train; the chosen
setting is then refitted on all of train.
"""

from __future__ import annotations

import itertools
from typing import Callable, Iterable

import numpy as np
import pandas as pd
from pyspark.ml.classification import LogisticRegression, LogisticRegressionModel
from pyspark.ml.evaluation import MulticlassClassificationEvaluator, RegressionEvaluator
from pyspark.ml.feature import OneHotEncoder, OneHotEncoderModel, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.ml.recommendation import ALS, ALSModel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkrec import columns as C
from sparkrec import sampling

# Columns of the frames `classify` returns.
PROBABILITY = "like_probability"
PREDICTED = "like_predicted"

_PREDICTION = "prediction"  # Spark ML's output column of ALS and LogisticRegression
_FEATURES = "features"
_RATING_HAT = "rating_hat"


# --- shared helpers -----------------------------------------------------------


def carve_validation(train: DataFrame, fraction: float, seed: int) -> tuple[DataFrame, DataFrame]:
    """Split train into (fit, validation) by a seeded hash of each rating.

    The timestamp is part of the hash so the carve-out is independent of the
    prepare job's (userId, movieId) hash split even with an equal seed:
    hashing the same keys with the same seed would select no train row.
    """
    draw = sampling.unit_hash(seed, C.USER_ID, C.MOVIE_ID, C.TIMESTAMP)
    return train.filter(draw >= fraction), train.filter(draw < fraction)


def grid_of(**options: list) -> list[dict]:
    """Every combination of the option lists, e.g. grid_of(rank=[10, 30], reg_param=[0.1])."""
    names = list(options)
    return [dict(zip(names, values)) for values in itertools.product(*options.values())]


def tune(
    grid: Iterable[dict], fit: Callable[[dict], object], loss: Callable[[object], float],
) -> tuple[dict, object, list[dict]]:
    """Fit every setting; return the one with the lowest validation loss, its model, and the whole table."""
    table, best = [], None
    for setting in grid:
        model = fit(setting)
        value = float(loss(model))
        table.append({**setting, "validation_loss": value})
        if best is None or value < best[2]:
            best = (setting, model, value)
    return best[0], best[1], table


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

    def keys(self, user_idx: np.ndarray, watched_rows: np.ndarray, watched_cols: np.ndarray) -> np.ndarray:
        keys = np.array(self.scores(user_idx), dtype=np.float32)
        # Movies a baseline cannot score (NaN) are never recommended, like watched ones.
        keys[np.isnan(keys)] = -np.inf
        keys[watched_rows, watched_cols] = -np.inf
        return keys

    def scorer(self) -> Baseline:
        return self

    def details(self) -> dict:
        return {}


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


# --- ALS ----------------------------------------------------------------------


class Als(Baseline):
    """Explicit-rating matrix factorisation over the dense user and movie indices.

    A predicted rating at or above the like threshold is a like. P(like) is
    the predicted rating through a logistic (Platt) calibration fitted on the
    validation carve-out, so that AUC and log loss are defined. A pair ALS
    cannot score (a movie absent from train) falls back to the user's mean
    train rating.
    """

    name = "als"

    def __init__(self, movie_ids: np.ndarray, model: ALSModel, calibration: LogisticRegressionModel,
                 user_means: DataFrame, global_mean: float, like_threshold: float,
                 user_factors: np.ndarray, item_factors: np.ndarray, setting: dict, grid: list[dict]):
        super().__init__(movie_ids)
        self.model = model
        self.calibration = calibration
        self.user_means = user_means  # user_idx, user_mean
        self.global_mean = global_mean
        self.like_threshold = like_threshold
        self.user_factors = user_factors  # by user_idx
        self.item_factors = item_factors  # by catalogue row
        self.setting = setting
        self.grid = grid

    def predicted_rating(self, rows: DataFrame) -> DataFrame:
        scored = self.model.transform(rows)
        with_mean = scored.join(F.broadcast(self.user_means), C.USER_IDX, "left")
        fallback = F.coalesce(F.col("user_mean"), F.lit(self.global_mean))
        return with_mean.withColumn(_PREDICTION, F.when(F.isnan(_PREDICTION), fallback).otherwise(F.col(_PREDICTION)))

    def classify(self, rows: DataFrame) -> pd.DataFrame:
        calibrated = self.calibration.transform(_rating_feature(self.predicted_rating(rows)))
        return classified(calibrated, positive_probability(), F.col(_RATING_HAT) >= self.like_threshold)

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        return self.user_factors[user_idx] @ self.item_factors.T

    def details(self) -> dict:
        return {"chosen": self.setting, "grid": self.grid, "validation_loss": "rmse"}


def _factor_table(factors: DataFrame, size: int) -> np.ndarray:
    """ALS factors as a dense table indexed by vocabulary index; NaN rows for indices ALS never saw
    (index 0, unknown, among them: no train row carries it)."""
    frame = factors.toPandas()
    table = np.full((size, len(frame["features"].iloc[0])), np.nan)
    table[frame["id"].to_numpy()] = np.stack(frame["features"].to_numpy())
    return table


def _rating_feature(scored: DataFrame) -> DataFrame:
    """ALS's predicted rating as the one-feature vector of the calibration, renamed so the
    calibration's own `prediction` output does not collide with it."""
    renamed = scored.withColumnRenamed(_PREDICTION, _RATING_HAT)
    return VectorAssembler(inputCols=[_RATING_HAT], outputCol=_FEATURES).transform(renamed)


def _als(setting: dict, max_iter: int, seed: int, blocks: int) -> ALS:
    return ALS(
        rank=setting["rank"],
        regParam=setting["reg_param"],
        maxIter=max_iter,
        seed=seed,
        numUserBlocks=blocks,
        numItemBlocks=blocks,
        userCol=C.USER_IDX,
        itemCol=C.MOVIE_IDX,
        ratingCol=C.RATING,
        coldStartStrategy="nan",
    )


def _rmse(model: ALSModel, validation: DataFrame) -> float:
    predictions = model.transform(validation).filter(~F.isnan(_PREDICTION))
    return RegressionEvaluator(metricName="rmse", labelCol=C.RATING, predictionCol=_PREDICTION).evaluate(predictions)


def _calibrate(model: ALSModel, validation: DataFrame) -> LogisticRegressionModel:
    rated = model.transform(validation).filter(~F.isnan(_PREDICTION))
    return LogisticRegression(labelCol=C.LIKE, featuresCol=_FEATURES, regParam=0.0).fit(_rating_feature(rated))


def fit_als(
    train: DataFrame, catalogue: pd.DataFrame, vocab_sizes: dict[str, int], ranks: list[int],
    reg_params: list[float], max_iter: int, validation_fraction: float, seed: int, like_threshold: float,
    blocks: int,
) -> Als:
    """Grid-search rank x regParam by validation RMSE, calibrate on validation, refit on all of train.

    `blocks` partitions users and items; a block per core avoids the
    scheduling cost of Spark's default of ten on a small machine.
    """
    fit_part, validation = carve_validation(train, validation_fraction, seed)
    fit_part, validation = fit_part.cache(), validation.cache()
    setting, tuned, table = tune(
        grid_of(rank=ranks, reg_param=reg_params),
        lambda s: _als(s, max_iter, seed, blocks).fit(fit_part),
        lambda m: _rmse(m, validation),
    )
    calibration = _calibrate(tuned, validation)
    model = _als(setting, max_iter, seed, blocks).fit(train)
    item_factors = _factor_table(model.itemFactors, vocab_sizes["movie"])
    return Als(
        movie_ids=catalogue[C.MOVIE_ID].to_numpy(),
        model=model,
        calibration=calibration,
        user_means=train.groupBy(C.USER_IDX).agg(F.avg(C.RATING).alias("user_mean")).cache(),
        global_mean=float(train.agg(F.avg(C.RATING)).first()[0]),
        like_threshold=like_threshold,
        user_factors=_factor_table(model.userFactors, vocab_sizes["user"]),
        item_factors=item_factors[catalogue[C.MOVIE_IDX].to_numpy()],
        setting=setting,
        grid=table,
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
                 terms: tuple[np.ndarray, np.ndarray], setting: dict, grid: list[dict]):
        super().__init__(movie_ids)
        self.encoder = encoder
        self.model = model
        self.user_terms, self.movie_terms = terms  # by user_idx; by catalogue row, intercept included
        self.setting = setting
        self.grid = grid

    def classify(self, rows: DataFrame) -> pd.DataFrame:
        scored = self.model.transform(_features(self.encoder, rows))
        return classified(scored, positive_probability(), F.col(_PREDICTION))

    def scores(self, user_idx: np.ndarray) -> np.ndarray:
        return self.user_terms[user_idx][:, None] + self.movie_terms[None, :]

    def details(self) -> dict:
        return {"chosen": self.setting, "grid": self.grid, "validation_loss": "log loss"}


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
    reg_params: list[float], max_iter: int, validation_fraction: float, seed: int,
) -> Logistic:
    """Choose regParam by validation log loss, then refit on all of train."""
    encoder = _encoder(spark, vocab_sizes)
    featured = _features(encoder, train).select(_FEATURES, C.LIKE, C.USER_ID, C.MOVIE_ID, C.TIMESTAMP).cache()
    fit_part, validation = carve_validation(featured, validation_fraction, seed)
    setting, _, table = tune(
        grid_of(reg_param=reg_params),
        lambda s: _logistic(s, max_iter).fit(fit_part),
        lambda m: _log_loss(m, validation),
    )
    model = _logistic(setting, max_iter).fit(featured)
    terms = _split_terms(model, vocab_sizes, catalogue)
    return Logistic(catalogue[C.MOVIE_ID].to_numpy(), encoder, model, terms, setting, table)
