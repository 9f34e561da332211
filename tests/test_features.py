"""Unit tests of parsing and feature functions, on small literal frames."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from sparkrec.core import columns as C
from sparkrec.prepare import features


@pytest.mark.parametrize(
    "title, year",
    [
        ("Toy Story (1995)", 1995),
        ("Babylon 5", None),
        ("Fawlty Towers (1975-1979)", 1975),
        ("Stranger Things (2016-)", 2016),
        ("Ready Player One (2018) ", 2018),
        ("2001: A Space Odyssey (1968)", 1968),
        ("Nocturnal Animals (2016) (a.k.a. something)", None),
        ("Hamlet (1990s)", None),
        ("Great Performances \"Cats\" (1998)", 1998),
        ("", None),
    ],
)
def test_release_year(spark, title, year):
    frame = spark.createDataFrame([(title,)], f"{C.TITLE} string")
    assert frame.select(features.release_year(F.col(C.TITLE))).first()[0] == year


def test_like_label_counts_exactly_the_threshold_as_like(spark):
    frame = spark.createDataFrame([(r,) for r in (3.0, 3.4, 3.5, 3.6, 5.0, 0.5)], f"{C.RATING} double")
    labels = [row[0] for row in frame.select(features.like_label(F.col(C.RATING), 3.5)).collect()]
    assert labels == [0, 0, 1, 1, 1, 0]


def test_movie_features_genres_and_flags(spark):
    movies = spark.createDataFrame(
        [
            (1, "Toy Story (1995)", "Adventure|Animation|Children|Comedy|Fantasy", 1995),
            (2, "Solo (2000)", "Drama", 2000),
            (3, "Nothing (2010)", C.NO_GENRES, 2010),
        ],
        f"{C.MOVIE_ID} int, {C.TITLE} string, {C.GENRES} string, {C.RELEASE_YEAR} int",
    )
    rows = {r[C.MOVIE_ID]: r for r in features.movie_features(movies, None, 3).collect()}
    assert (rows[1][C.GENRE1], rows[1][C.GENRE2]) == ("Adventure", "Animation")
    assert (rows[2][C.GENRE1], rows[2][C.GENRE2]) == ("Drama", None)
    assert (rows[3][C.GENRE1], rows[3][C.GENRE2]) == (C.NO_GENRES, None)
    flags = {flag for flag in C.GENRE_FLAG_COLUMNS if rows[1][flag] == 1}
    assert flags == {"genre_adventure", "genre_animation", "genre_children", "genre_comedy", "genre_fantasy"}
    assert [flag for flag in C.GENRE_FLAG_COLUMNS if rows[3][flag] == 1] == ["genre_no_genres_listed"]
    assert rows[2][C.RELEASE_YEAR] == 2000 and rows[1][C.TAGS] == []


def test_movie_tags_most_frequent_first_ties_by_name(spark):
    tags = spark.createDataFrame(
        [(1, "Pixar"), (1, "pixar "), (1, "fun"), (1, "Aardvark"), (1, "zany"), (1, "zany"), (2, "dark")],
        f"{C.MOVIE_ID} int, {C.TAG} string",
    )
    result = {r[C.MOVIE_ID]: r[C.TAGS] for r in features.movie_tags(tags, 3).collect()}
    assert result == {1: ["pixar", "zany", "aardvark"], 2: ["dark"]}


def test_genre_flag_column_names():
    assert C.genre_flag_column("Sci-Fi") == "genre_sci_fi"
    assert C.genre_flag_column(C.NO_GENRES) == "genre_no_genres_listed"
    assert len(set(C.GENRE_FLAG_COLUMNS)) == 20
