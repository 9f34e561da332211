"""User sampling and train/test splits, reproducible whatever the partitioning.

Every random choice is a hash of the row's keys and the seed, never an RNG
stream, so the same users and the same split come out on one core or a
hundred, with any number of shuffle partitions.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from sparkrec.core import columns as C

IS_TEST = "_is_test"
_HASH_BUCKETS = 1 << 30


def unit_hash(seed: int, *cols: str) -> Column:
    """A deterministic pseudo-uniform value in [0, 1) from the given columns and seed."""
    hashed = F.xxhash64(F.lit(seed), *[F.col(c) for c in cols])
    return F.pmod(hashed, F.lit(_HASH_BUCKETS)) / F.lit(float(_HASH_BUCKETS))


def sample_users(users: DataFrame, n: int | None, seed: int) -> list[int]:
    """`n` distinct user ids chosen by seeded hash order (all of them when n is None), sorted."""
    distinct = users.select(C.USER_ID).distinct()
    if n is None:
        return sorted(row[0] for row in distinct.collect())
    ordered = distinct.orderBy(F.xxhash64(F.lit(seed), F.col(C.USER_ID)), C.USER_ID).limit(n)
    return sorted(row[0] for row in ordered.collect())


def split_random(frame: DataFrame, test_fraction: float, seed: int) -> DataFrame:
    """The paper's protocol: each rating independently to test with probability `test_fraction`."""
    return frame.withColumn(IS_TEST, unit_hash(seed, C.USER_ID, C.MOVIE_ID) < F.lit(test_fraction))


def split_temporal(frame: DataFrame, test_fraction: float) -> DataFrame:
    """Each user's latest ceil(fraction * n) ratings to test (ties broken by movie id)."""
    per_user = Window.partitionBy(C.USER_ID)
    newest_first = per_user.orderBy(F.desc(C.TIMESTAMP), F.desc(C.MOVIE_ID))
    n_test = F.ceil(F.count(F.lit(1)).over(per_user) * F.lit(test_fraction))
    return frame.withColumn(IS_TEST, F.row_number().over(newest_first) <= n_test)


def split(frame: DataFrame, method: str, test_fraction: float, seed: int) -> DataFrame:
    """The rule prepare splits by (its `split` setting): "random" or "temporal"."""
    if method == "random":
        return split_random(frame, test_fraction, seed)
    return split_temporal(frame, test_fraction)


def test_rows(split: DataFrame) -> DataFrame:
    return split.filter(F.col(IS_TEST)).drop(IS_TEST)


def train_rows(split: DataFrame) -> DataFrame:
    return split.filter(~F.col(IS_TEST)).drop(IS_TEST)
