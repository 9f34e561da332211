"""Who the scoring job scores and what it never recommends them, on literal rows: the watched
and liked sets, the users chosen, and the counts the job reports before it scores."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from sparkrec.core import columns as C
from sparkrec.core.columns import LIKED, WATCHED
from sparkrec.score.users import input_counts, known_users, scoring_input, watched_sets

from helpers import frame

CATALOGUE = [(10,), (20,), (30,), (40,)]
SETS = "userId int, watched array<int>, liked array<int>"
INPUT = "userId int, user_idx int, watched array<int>, liked array<int>"


def sorted_sets(watched):
    # collect_set's order depends on the shuffle; recommend_batch sorts the cells itself.
    return watched.select(*[F.array_sort(c).alias(c) if c in (WATCHED, LIKED) else c for c in watched.columns])


@pytest.fixture(scope="module")
def watched(spark):
    interactions = frame(
        spark,
        "userId int, movieId int, rating double, like int",
        [
            (1, 10, 4.0, 1),
            (1, 20, 2.0, 0),
            (1, 20, 4.5, 1),
            (2, 30, 1.0, 0),
            (2, 99, 5.0, 1),  # 99 is not in the catalogue
            (3, 99, 4.0, 1),
        ],
    )
    return watched_sets(interactions, frame(spark, "movieId int", CATALOGUE)).cache()


@pytest.fixture(scope="module")
def user_vocab(spark):
    # User 2 rated but is not in the model's vocabulary; user 4 is, without a rating in these interactions.
    return frame(spark, "userId int, user_idx int", [(1, 1), (3, 2), (4, 3)])


def test_watched_sets_hold_each_users_distinct_catalogue_movies(spark, watched):
    expected = frame(
        spark,
        SETS,
        [
            (1, [10, 20], [10, 20]),
            (2, [30], []),
            # A user whose every movie left the catalogue is still a user with a rating.
            (3, [], []),
        ],
    )
    assertDataFrameEqual(sorted_sets(watched), expected)


def test_scoring_input_of_the_sample_is_the_vocabularys_users(spark, watched, user_vocab):
    expected = frame(spark, INPUT, [(1, 1, [10, 20], [10, 20]), (3, 2, [], []), (4, 3, [], [])])
    assertDataFrameEqual(sorted_sets(scoring_input(watched, user_vocab, "sample", 0)), expected)


def test_scoring_input_of_all_users_gives_unknown_ones_index_0(spark, watched, user_vocab):
    expected = frame(spark, INPUT, [(1, 1, [10, 20], [10, 20]), (2, C.UNKNOWN_INDEX, [30], []), (3, 2, [], [])])
    assertDataFrameEqual(sorted_sets(scoring_input(watched, user_vocab, "all", 0)), expected)


@pytest.mark.parametrize("users, chosen", [("all", [1, 2]), ("sample", [1, 3])])
def test_scoring_input_limit_takes_the_lowest_user_ids(watched, user_vocab, users, chosen):
    limited = scoring_input(watched, user_vocab, users, 2)
    assert sorted(row[C.USER_ID] for row in limited.collect()) == chosen


def test_known_users_drops_those_without_an_embedding(spark, watched, user_vocab):
    known = known_users(scoring_input(watched, user_vocab, "all", 0))
    expected = frame(spark, INPUT, [(1, 1, [10, 20], [10, 20]), (3, 2, [], [])])
    assertDataFrameEqual(sorted_sets(known), expected)


def test_input_counts(spark):
    users = frame(
        spark,
        INPUT,
        [
            (1, 1, [10, 20], [10]),  # 2 unwatched of 4: fewer than k
            (2, C.UNKNOWN_INDEX, [30], []),
            (3, 2, [], []),
        ],
    )
    assert input_counts(users, catalogue_size=4, k=3) == {
        "users": 3,
        "unknown": 1,
        "no_history": 1,
        "pairs": 2 + 3 + 4,
        "rows": 2 + 3 + 3,
        "short": 1,
    }


def test_input_counts_of_no_user_are_zeros(spark):
    assert input_counts(frame(spark, INPUT, []), catalogue_size=4, k=3) == dict.fromkeys(
        ("users", "unknown", "no_history", "pairs", "rows", "short"), 0
    )
