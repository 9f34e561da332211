"""Vocabularies on literal keys: index 0 is never a key's, known keys are 1..n in key order,
and a key the vocabulary lacks looks up as 0."""

from __future__ import annotations

import pytest
from pyspark.testing import assertDataFrameEqual

from sparkrec.core import columns as C
from sparkrec.prepare import vocab

from helpers import frame


def test_build_numbers_distinct_keys_from_1_in_key_order(spark):
    built = vocab.build(spark, "movie", [30, 10, 20, 10, None, 30])
    expected = frame(spark, "movieId int, movie_idx int", [(10, 1), (20, 2), (30, 3)])
    # Order matters: the index is the position in key order, and the frame is written as is.
    assertDataFrameEqual(built, expected, checkRowOrder=True)


def test_build_keys_text_vocabularies_by_string_order(spark):
    built = vocab.build(spark, "genre", ["Drama", "Action", "Sci-Fi", "Action", C.NO_GENRES])
    expected = frame(
        spark, "genre string, genre_idx int", [(C.NO_GENRES, 1), ("Action", 2), ("Drama", 3), ("Sci-Fi", 4)]
    )
    assertDataFrameEqual(built, expected, checkRowOrder=True)


def test_build_declares_keys_and_indices_not_null(spark):
    schema = vocab.build(spark, "year", [1995]).schema
    assert [(f.name, f.dataType.simpleString(), f.nullable) for f in schema.fields] == [
        ("year", "int", False),
        (C.YEAR_IDX, "int", False),
    ]


def test_build_of_no_keys_is_empty_and_sized_1(spark):
    built = vocab.build(spark, "tag", [None])
    assert built.collect() == []
    assert vocab.size(built) == 1


def test_build_of_an_unknown_vocabulary_fails(spark):
    with pytest.raises(KeyError):
        vocab.build(spark, "director", ["Varda"])


def test_size_counts_the_reserved_index(spark):
    assert vocab.size(vocab.build(spark, "user", [7, 3, 7, 11])) == 4


def test_lookup_gives_0_to_unknown_and_null_keys(spark):
    users = vocab.build(spark, "user", [7, 3, 11])
    ratings = frame(spark, "userId int, rating double", [(3, 4.0), (11, 2.0), (3, 5.0), (99, 1.0), (None, 3.0)])
    expected = frame(
        spark,
        "userId int, rating double, user_idx int",
        [(3, 4.0, 1), (11, 2.0, 3), (3, 5.0, 1), (99, 1.0, C.UNKNOWN_INDEX), (None, 3.0, C.UNKNOWN_INDEX)],
    )
    assertDataFrameEqual(vocab.lookup(ratings, users, C.USER_ID, C.USER_IDX), expected)


def test_lookup_reads_the_key_from_any_column(spark):
    genres = vocab.build(spark, "genre", ["Action", "Drama"])
    movies = frame(spark, "movieId int, genre1 string", [(1, "Drama"), (2, "Western"), (3, None)])
    expected = frame(
        spark, "movieId int, genre1 string, genre1_idx int", [(1, "Drama", 2), (2, "Western", 0), (3, None, 0)]
    )
    assertDataFrameEqual(vocab.lookup(movies, genres, C.GENRE1, C.GENRE1_IDX), expected)
