"""The most-popular baseline: every user gets the movies most liked in train."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sparkrec.core import columns as C
from sparkrec.evaluate.baselines import PROBABILITY, Baseline, classified


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
        catalogue[C.MOVIE_ID].to_numpy(),
        stats.drop("likes"),
        likes["likes"].fillna(0).to_numpy(np.float64),
        global_rate,
    )
