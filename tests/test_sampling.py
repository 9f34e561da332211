"""Sampling and splits on small literal frames: exact, and independent of partitioning."""

from __future__ import annotations

import pytest
from pyspark.testing import assertDataFrameEqual

from sparkrec.core import columns as C
from sparkrec.prepare import sampling

from helpers import frame


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
    first = {
        (r[0], r[1])
        for r in sampling.test_rows(sampling.split_random(ratings(spark, rows, 1), 0.1, 42))
        .select(C.USER_ID, C.MOVIE_ID)
        .collect()
    }
    second = {
        (r[0], r[1])
        for r in sampling.test_rows(sampling.split_random(ratings(spark, rows, 7), 0.1, 42))
        .select(C.USER_ID, C.MOVIE_ID)
        .collect()
    }
    other_seed = {
        (r[0], r[1])
        for r in sampling.test_rows(sampling.split_random(ratings(spark, rows, 1), 0.1, 43))
        .select(C.USER_ID, C.MOVIE_ID)
        .collect()
    }
    assert first == second and first != other_seed
    assert 160 <= len(first) <= 240  # 2,000 ratings at 10%: binomial sd ~13


def test_sample_users_same_users_whatever_the_partitioning(spark):
    rows = [(u, 1, 0) for u in range(1, 301)]
    a = sampling.sample_users(ratings(spark, rows, 1), 25, 42)
    b = sampling.sample_users(ratings(spark, rows, 9), 25, 42)
    assert a == b and len(a) == 25 and a == sorted(a)
    assert sampling.sample_users(ratings(spark, rows, 2), 25, 7) != a
    assert sampling.sample_users(ratings(spark, rows, 2), None, 42) == list(range(1, 301))


# --- whole frames, exact ---

KEYS = "userId int, movieId int, timestamp long"
SPLIT = KEYS + ", _is_test boolean"
ROWS = [(1, 10, 5), (1, 20, 6), (2, 10, 7), (2, 30, 8), (3, 40, 9), (3, 10, 1)]


def test_unit_hash_is_stable(spark):
    """Pinned, bucket by bucket out of 2^30: a change of hash, seed handling or column order would
    silently move ratings between train and test for every existing prepare output."""
    keys = frame(spark, KEYS, ROWS)
    hashed = keys.select(C.USER_ID, C.MOVIE_ID, sampling.unit_hash(42, C.USER_ID, C.MOVIE_ID).alias("draw"))
    buckets = [203659040, 720898723, 749254792, 85836028, 179984776, 800839959]
    expected = frame(
        spark,
        "userId int, movieId int, draw double",
        [(u, m, bucket / 2**30) for (u, m, _), bucket in zip(ROWS, buckets)],
    )
    assertDataFrameEqual(hashed, expected, rtol=0, atol=0)
    swapped = keys.select(sampling.unit_hash(42, C.MOVIE_ID, C.USER_ID)).first()[0]
    assert swapped != 203659040 / 2**30


def test_split_random_flags_rows_whose_draw_is_below_the_fraction(spark):
    # Draws from test_unit_hash_is_stable: 0.19, 0.67, 0.70, 0.08, 0.17, 0.75.
    expected = frame(
        spark, SPLIT, [(u, m, t, flag) for (u, m, t), flag in zip(ROWS, [True, False, False, True, True, False])]
    )
    assertDataFrameEqual(sampling.split_random(frame(spark, KEYS, ROWS), 0.5, 42), expected)


def test_split_temporal_flags_each_users_latest(spark):
    rows = [(1, 10, 100), (1, 20, 300), (1, 30, 200), (2, 10, 50), (2, 20, 50), (3, 10, 1)]
    # 0.5 of 3 -> 2 latest; of 2 -> 1, the tie on time going to the higher movie id; of 1 -> 1.
    expected = frame(
        spark,
        SPLIT,
        [
            (1, 10, 100, False),
            (1, 20, 300, True),
            (1, 30, 200, True),
            (2, 10, 50, False),
            (2, 20, 50, True),
            (3, 10, 1, True),
        ],
    )
    assertDataFrameEqual(sampling.split_temporal(frame(spark, KEYS, rows), 0.5), expected)


@pytest.mark.parametrize("method", ["random", "temporal"])
def test_split_applies_the_configured_rule(spark, method):
    keys = frame(spark, KEYS, ROWS)
    rule = sampling.split_random(keys, 0.5, 42) if method == "random" else sampling.split_temporal(keys, 0.5)
    assertDataFrameEqual(sampling.split(keys, method, 0.5, 42), rule)


def test_test_rows_and_train_rows_part_a_split_and_drop_the_flag(spark):
    split = frame(spark, SPLIT, [(1, 10, 5, True), (1, 20, 6, False), (2, 10, 7, False)])
    assertDataFrameEqual(sampling.test_rows(split), frame(spark, KEYS, [(1, 10, 5)]))
    assertDataFrameEqual(sampling.train_rows(split), frame(spark, KEYS, [(1, 20, 6), (2, 10, 7)]))
