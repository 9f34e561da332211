"""Sampling and splits on small literal frames: exact, and independent of partitioning."""

from __future__ import annotations

from sparkrec.core import columns as C
from sparkrec.prepare import sampling


def ratings(spark, rows, partitions=1):
    frame = spark.createDataFrame(rows, f"{C.USER_ID} int, {C.MOVIE_ID} int, {C.TIMESTAMP} long")
    return frame.repartition(partitions)


def test_temporal_split_takes_each_users_latest_tenth_rounded_up(spark):
    rows = [(1, m, 100 + m) for m in range(1, 21)] + [(2, m, 50) for m in range(1, 6)] + [(3, 1, 7)]
    split = sampling.split_temporal(ratings(spark, rows, 3), 0.1)
    test = sorted((r[C.USER_ID], r[C.MOVIE_ID]) for r in sampling.test_rows(split).collect())
    # user 1: ceil(2.0) = 2 latest; user 2: ceil(0.5) = 1, timestamp tie -> highest movie id; user 3: ceil(0.1) = 1
    assert test == [(1, 19), (1, 20), (2, 5), (3, 1)]
    assert sampling.train_rows(split).count() == 26 - 4


def test_random_split_is_independent_of_partitioning_and_near_the_fraction(spark):
    rows = [(u, m, 0) for u in range(1, 41) for m in range(1, 51)]
    first = {(r[0], r[1]) for r in sampling.test_rows(sampling.split_random(ratings(spark, rows, 1), 0.1, 42))
             .select(C.USER_ID, C.MOVIE_ID).collect()}
    second = {(r[0], r[1]) for r in sampling.test_rows(sampling.split_random(ratings(spark, rows, 7), 0.1, 42))
              .select(C.USER_ID, C.MOVIE_ID).collect()}
    other_seed = {(r[0], r[1]) for r in sampling.test_rows(sampling.split_random(ratings(spark, rows, 1), 0.1, 43))
                  .select(C.USER_ID, C.MOVIE_ID).collect()}
    assert first == second and first != other_seed
    assert 160 <= len(first) <= 240  # 2,000 ratings at 10%: binomial sd ~13


def test_sample_users_same_users_whatever_the_partitioning(spark):
    rows = [(u, 1, 0) for u in range(1, 301)]
    a = sampling.sample_users(ratings(spark, rows, 1), 25, 42)
    b = sampling.sample_users(ratings(spark, rows, 9), 25, 42)
    assert a == b and len(a) == 25 and a == sorted(a)
    assert sampling.sample_users(ratings(spark, rows, 2), 25, 7) != a
    assert sampling.sample_users(ratings(spark, rows, 2), None, 42) == list(range(1, 301))
