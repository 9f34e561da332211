"""Who is scored, against what: each user's watched and liked catalogue movies, in Spark."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sparkrec.core import columns as C
from sparkrec.core.columns import LIKED, RANK, RECOMMENDATION_COLUMNS, WATCHED
from sparkrec.prepare import vocab


def watched_sets(interactions: DataFrame, movies: DataFrame) -> DataFrame:
    """userId, watched, liked: every user with a rating, the distinct catalogue movies they rated (maybe none),
    and those they liked (a history the two-tower model reads).

    One pass over the ratings gives the users=all list and both sets.
    """
    catalogue = F.broadcast(movies.select(C.MOVIE_ID, F.lit(True).alias("_catalogued")))
    rated = interactions.select(C.USER_ID, C.MOVIE_ID, C.LIKE).join(catalogue, C.MOVIE_ID, "left")
    in_catalogue = F.when(F.col("_catalogued"), F.col(C.MOVIE_ID))  # null otherwise, which collect_set skips
    liked = F.when(F.col(C.LIKE) == 1, in_catalogue)
    return rated.groupBy(C.USER_ID).agg(F.collect_set(in_catalogue).alias(WATCHED), F.collect_set(liked).alias(LIKED))


def scoring_input(watched: DataFrame, user_vocab: DataFrame, users: str, limit: int) -> DataFrame:
    """userId, user_idx (0 outside the model's vocabulary), watched and liked (empty when none).

    users="sample": the users of vocab/user; "all": every user with a rating.
    With `limit`, only that many users, the lowest userIds.
    """
    chosen = watched if users == "all" else user_vocab.select(C.USER_ID).join(watched, C.USER_ID, "left")
    if limit:
        chosen = chosen.orderBy(C.USER_ID).limit(limit)
    indexed = vocab.lookup(chosen, user_vocab, C.USER_ID, C.USER_IDX)
    empty = F.array().cast(T.ArrayType(T.IntegerType()))
    lists = [F.coalesce(F.col(name), empty).alias(name) for name in (WATCHED, LIKED)]
    return indexed.select(C.USER_ID, C.USER_IDX, *lists)


def known_users(frame: DataFrame) -> DataFrame:
    """The users the model has an embedding for (unknown_users=skip)."""
    return frame.filter(F.col(C.USER_IDX) != C.UNKNOWN_INDEX)


def input_counts(frame: DataFrame, catalogue_size: int, k: int) -> dict[str, int]:
    """Users, unknown users, users without a rated catalogue movie, candidate pairs and expected rows of an input.

    A two-tower model places a user without history at its empty-history vector: one list for all of them.
    """
    unwatched = F.lit(catalogue_size) - F.size(WATCHED)
    row = frame.agg(
        F.count(F.lit(1)).alias("users"),
        F.sum((F.col(C.USER_IDX) == C.UNKNOWN_INDEX).cast("long")).alias("unknown"),
        F.sum((F.size(WATCHED) == 0).cast("long")).alias("no_history"),
        F.sum(unwatched.cast("long")).alias("pairs"),
        F.sum(F.least(unwatched, F.lit(k)).cast("long")).alias("rows"),
        F.sum((unwatched < k).cast("long")).alias("short"),
    ).first()
    return {name: int(row[name] or 0) for name in ("users", "unknown", "no_history", "pairs", "rows", "short")}


def with_movie_details(scored: DataFrame, movies: DataFrame) -> DataFrame:
    """The recommendation table: scored rows with each movie's title and genres."""
    details = F.broadcast(movies.select(C.MOVIE_ID, C.TITLE, C.GENRES))
    return scored.join(details, C.MOVIE_ID, "left").select(*RECOMMENDATION_COLUMNS)


def export_frame(recommendations: DataFrame) -> DataFrame:
    """One file, users in order, ranks in order: the CSV/JSON hand-off."""
    return recommendations.repartition(1).sortWithinPartitions(C.USER_ID, RANK)
