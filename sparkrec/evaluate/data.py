"""The split as the evaluation reads it: what every model is fitted on, classifies and ranks; the held-out users."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sparkrec.core import columns as C
from sparkrec.core import prepare_output
from sparkrec.evaluate.config import EvaluateConfig, EvaluateError
from sparkrec.prepare import sampling
from sparkrec.score.planning import Tables
from sparkrec.score.users import scoring_input, watched_sets

# What the evaluation reads of a prepare output beside what scoring reads (sparkrec.score.planning).
SPLITS = ("train", "test")


@dataclass
class EvalData:
    """The split as every model sees it: Spark frames to fit and classify, driver-side ranking inputs."""

    train: DataFrame  # every train row: the baselines learn from all of train
    test: DataFrame  # the evaluated users' test rows
    catalogue: pd.DataFrame  # movies/, sorted by movieId: the candidate movies
    movies: DataFrame  # movies/ in Spark
    user_vocab: DataFrame  # vocab/user
    users: pd.DataFrame  # evaluated users: userId, user_idx, watched (their train movieIds)
    labels: pd.DataFrame  # userId, movieId, like of `test`
    relevant: dict[int, set]  # userId -> liked test movieIds
    train_ratings: dict[int, int]  # movieId -> its number of train ratings
    manifest: dict  # prepare's
    held_out: HeldOut | None = None  # users outside the training sample (held_out_users > 0)

    @property
    def vocab_sizes(self) -> dict[str, int]:
        return self.manifest["vocab_sizes"]

    @property
    def like_threshold(self) -> float:
        return float(self.manifest["config"]["like_threshold"])


@dataclass
class HeldOut:
    """Users outside prepare's sample, each split by prepare's own rule into a history and test ratings.

    The model never trained on them: it sees their history only (`users`, user_idx 0).
    """

    users: pd.DataFrame  # userId, user_idx (0), watched and liked: their history's movies
    relevant: dict[int, set]  # userId -> liked test movieIds
    ratings: dict[str, int]  # history / test rating counts


def evaluated_users(spark: SparkSession, test: DataFrame, config: EvaluateConfig) -> DataFrame:
    """userId of every user with a test rating, or a seeded sample of `eval_users` of them."""
    if config.user_count is None:
        return test.select(C.USER_ID).distinct()
    chosen = sampling.sample_users(test, config.user_count, config.seed)
    schema = T.StructType([T.StructField(C.USER_ID, T.IntegerType(), False)])
    return spark.createDataFrame([(u,) for u in chosen], schema)


def relevant_sets(labels: pd.DataFrame) -> dict[int, set]:
    """userId -> the movies the user liked in test; users without one are absent."""
    liked = labels[labels[C.LIKE] == 1]
    return {int(user): set(group[C.MOVIE_ID].tolist()) for user, group in liked.groupby(C.USER_ID)}


def user_table(train: DataFrame, movies: DataFrame, user_vocab: DataFrame, chosen: DataFrame) -> pd.DataFrame:
    """The evaluated users as the scorer reads them: userId, user_idx, watched (their train movieIds)."""
    watched = watched_sets(train, movies)
    # Every evaluated user is a sampled user (a test rating implies it): the "sample" input holds them all.
    sampled = scoring_input(watched, user_vocab, "sample", 0)
    return sampled.join(chosen, C.USER_ID, "left_semi").orderBy(C.USER_ID).toPandas()


def rating_counts(train: DataFrame) -> dict[int, int]:
    """movieId -> its number of train ratings."""
    return {int(movie): int(n) for movie, n in train.groupBy(C.MOVIE_ID).count().toPandas().itertuples(index=False)}


def held_out_users(
    spark: SparkSession,
    interactions: DataFrame,
    movies: DataFrame,
    user_vocab: DataFrame,
    manifest: dict,
    config: EvaluateConfig,
) -> HeldOut | None:
    """A seeded sample of `held_out_users` users of interactions/ outside the sample, split as prepare splits.

    None when every user with a rating was sampled.
    """
    outside = interactions.join(user_vocab.select(C.USER_ID), C.USER_ID, "left_anti")
    chosen = sampling.sample_users(outside, config.held_out_users, config.seed)
    if not chosen:
        return None
    schema = T.StructType([T.StructField(C.USER_ID, T.IntegerType(), False)])
    rows = outside.join(F.broadcast(spark.createDataFrame([(u,) for u in chosen], schema)), C.USER_ID, "left_semi")
    prepare = manifest["config"]
    split = sampling.split(rows, prepare["split"], prepare["test_fraction"], prepare["seed"]).cache()
    history, test = sampling.train_rows(split), sampling.test_rows(split)
    labels = test.select(C.USER_ID, C.MOVIE_ID, C.LIKE).toPandas()
    relevant = relevant_sets(labels)
    watched = watched_sets(history, movies)
    users = scoring_input(watched, user_vocab, "all", 0).orderBy(C.USER_ID).toPandas()
    users = users[users[C.USER_ID].isin(relevant)].reset_index(drop=True)
    counts = {"history_ratings": int(history.count()), "test_ratings": len(labels)}
    split.unpersist()
    return HeldOut(users, relevant, counts)


def load_data(spark: SparkSession, inputs: Tables, config: EvaluateConfig) -> EvalData:
    """Read the split beside what scoring read (`inputs`); only the evaluated users' test rows, user table and
    labels reach the driver."""
    data_dir = inputs.data_dir
    prepare_output.require(spark, data_dir, SPLITS, EvaluateError)
    train = spark.read.parquet(f"{data_dir}/train").cache()
    test = spark.read.parquet(f"{data_dir}/test")
    chosen = F.broadcast(evaluated_users(spark, test, config))
    test = test.join(chosen, C.USER_ID, "left_semi").cache()
    movies, user_vocab = inputs.movies, inputs.user_vocab
    labels = test.select(C.USER_ID, C.MOVIE_ID, C.LIKE).toPandas()
    manifest = prepare_output.read_manifest(spark, data_dir, EvaluateError)
    held = (
        held_out_users(spark, inputs.interactions, movies, user_vocab, manifest, config)
        if config.held_out_users
        else None
    )
    return EvalData(
        train=train,
        test=test,
        catalogue=inputs.catalogue,
        movies=movies,
        user_vocab=user_vocab,
        users=user_table(train, movies, user_vocab, chosen),
        labels=labels,
        relevant=relevant_sets(labels),
        train_ratings=rating_counts(train),
        manifest=manifest,
        held_out=held,
    )
