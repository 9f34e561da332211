"""Logistic regression on one-hot user, movie and year plus the genre flags: the paper's "standard machine learning"."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.ml.classification import LogisticRegression, LogisticRegressionModel
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.feature import OneHotEncoder, OneHotEncoderModel, VectorAssembler
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkrec.core import columns as C
from sparkrec.evaluate.baselines import Baseline, classified, positive_probability
from sparkrec.evaluate.tuning import Tuned, carve_validation, search

# One-hot blocks of the feature vector, in order; the 20 genre flags follow.
_PREDICTION = "prediction"  # LogisticRegression's output column
_FEATURES = "features"
_ONE_HOT = ((C.USER_IDX, "user"), (C.MOVIE_IDX, "movie"), (C.YEAR_IDX, "year"))


class Logistic(Baseline):
    """Logistic regression on one-hot user, movie and release year plus the genre multi-hot flags.

    The logit is a user term plus a movie term, so a user's catalogue scores
    are read off the coefficients without Spark.
    """

    name = "logistic"

    def __init__(
        self,
        movie_ids: np.ndarray,
        encoder: OneHotEncoderModel,
        model: LogisticRegressionModel,
        terms: tuple[np.ndarray, np.ndarray],
        tuned: Tuned,
    ):
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
        labelCol=C.LIKE,
        featuresCol=_FEATURES,
        regParam=setting["reg_param"],
        maxIter=max_iter,
        standardization=False,
    )


def _log_loss(model: LogisticRegressionModel, validation: DataFrame) -> float:
    evaluator = MulticlassClassificationEvaluator(metricName="logLoss", labelCol=C.LIKE)
    return evaluator.evaluate(model.transform(validation))


def _split_terms(
    model: LogisticRegressionModel,
    vocab_sizes: dict[str, int],
    catalogue: pd.DataFrame,
) -> tuple[np.ndarray, np.ndarray]:
    """The per-user and per-catalogue-movie parts of the logit, from the coefficient blocks."""
    weights = model.coefficients.toArray()
    bounds = np.cumsum([0] + [vocab_sizes[name] for _, name in _ONE_HOT])
    user_w, movie_w, year_w = (weights[start:end] for start, end in zip(bounds[:-1], bounds[1:]))
    flags = catalogue[list(C.GENRE_FLAG_COLUMNS)].to_numpy(dtype=np.float64)
    movie_terms = (
        movie_w[catalogue[C.MOVIE_IDX].to_numpy()]
        + year_w[catalogue[C.YEAR_IDX].to_numpy()]
        + flags @ weights[bounds[-1] :]
        + model.intercept
    )
    return user_w, movie_terms


def fit_logistic(
    spark: SparkSession,
    train: DataFrame,
    catalogue: pd.DataFrame,
    vocab_sizes: dict[str, int],
    reg_params: list[float],
    max_iter: int,
    validation_fraction: float,
    seed: int,
    widen: int,
) -> Logistic:
    """Choose regParam by validation log loss, then refit on all of train."""
    encoder = _encoder(spark, vocab_sizes)
    featured = _features(encoder, train).select(_FEATURES, C.LIKE, C.USER_ID, C.MOVIE_ID, C.TIMESTAMP).cache()
    fit_part, validation = carve_validation(featured, validation_fraction, seed)
    tuned = search(
        "logistic",
        {"reg_param": reg_params},
        lambda s: _logistic(s, max_iter).fit(fit_part),
        lambda m: _log_loss(m, validation),
        "log loss",
        maximize=False,
        widen=widen,
    )
    model = _logistic(tuned.setting, max_iter).fit(featured)
    terms = _split_terms(model, vocab_sizes, catalogue)
    return Logistic(catalogue[C.MOVIE_ID].to_numpy(), encoder, model, terms, tuned)
