"""Unit tests of parsing and feature functions, on small literal frames."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from sparkrec.core import columns as C
from sparkrec.prepare import features

from helpers import frame


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
        ('Great Performances "Cats" (1998)', 1998),
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


# --- whole frames, exact: every column, its type and every row ---

MOVIES = "movieId int, title string, genres string, release_year int"
FEATURES = (
    "movieId int, title string, genres string, release_year int, genre1 string, genre2 string, "
    + ", ".join(f"{flag} tinyint" for flag in C.GENRE_FLAG_COLUMNS)
    + ", tags array<string>"
)
TAGS = "userId int, movieId int, tag string"


def flags(*genres: str) -> tuple:
    """The multi-hot flags, in columns.GENRE_LIST's order."""
    return tuple(1 if genre in genres else 0 for genre in C.GENRE_LIST)


def test_movie_tags_cuts_at_top_n_after_ordering_ties_by_name(spark):
    tags = frame(
        spark,
        TAGS,
        [
            (1, 1, "twist"),
            (2, 1, "Twist"),
            (3, 1, " twist "),
            (1, 1, "noir"),
            (2, 1, "noir"),
            # Tied at one use each: the first in name order fills the last place.
            (1, 1, "rain"),
            (2, 1, "Moody"),
            (3, 1, "zeppelin"),
            (1, 2, "cute"),
        ],
    )
    expected = frame(spark, "movieId int, tags array<string>", [(1, ["twist", "noir", "moody"]), (2, ["cute"])])
    assertDataFrameEqual(features.movie_tags(tags, 3), expected)


def test_movie_features_whole_rows(spark):
    movies = frame(
        spark,
        MOVIES,
        [
            (1, "Toy Story (1995)", "Adventure|Animation|Children|Comedy|Fantasy", 1995),
            (2, "Solo (2000)", "Drama", 2000),
            (3, "Nothing", C.NO_GENRES, None),
        ],
    )
    tags = frame(spark, TAGS, [(1, 1, "Pixar"), (2, 1, "pixar"), (1, 1, "fun"), (1, 9, "not in the catalogue")])
    expected = frame(
        spark,
        FEATURES,
        [
            (
                1,
                "Toy Story (1995)",
                "Adventure|Animation|Children|Comedy|Fantasy",
                1995,
                "Adventure",
                "Animation",
                *flags("Adventure", "Animation", "Children", "Comedy", "Fantasy"),
                ["pixar", "fun"],
            ),
            # No tags: an empty list, never null (the tag index columns are built from it).
            (2, "Solo (2000)", "Drama", 2000, "Drama", None, *flags("Drama"), []),
            (3, "Nothing", C.NO_GENRES, None, C.NO_GENRES, None, *flags(C.NO_GENRES), []),
        ],
    )
    assertDataFrameEqual(features.movie_features(movies, tags, 2), expected)


def test_movie_features_without_a_tags_file_gives_every_movie_no_tags(spark):
    movies = frame(spark, MOVIES, [(2, "Solo (2000)", "Drama|War", 2000)])
    expected = frame(
        spark, FEATURES, [(2, "Solo (2000)", "Drama|War", 2000, "Drama", "War", *flags("Drama", "War"), [])]
    )
    assertDataFrameEqual(features.movie_features(movies, None, 3), expected)


RATINGS = "userId int, movieId int, rating double, timestamp long"


def test_labelled_adds_an_integer_like(spark):
    ratings = frame(spark, RATINGS, [(1, 1, 3.0, 10), (1, 2, 3.5, 11), (2, 1, 5.0, 12)])
    expected = frame(spark, RATINGS + ", like int", [(1, 1, 3.0, 10, 0), (1, 2, 3.5, 11, 1), (2, 1, 5.0, 12, 1)])
    assertDataFrameEqual(features.labelled(ratings, 3.5), expected)


def test_interactions_carry_the_movie_fields_the_model_reads(spark):
    ratings = frame(spark, RATINGS, [(1, 1, 4.0, 10), (1, 2, 2.0, 11), (2, 1, 3.0, 12), (2, 9, 5.0, 13)])
    movies = features.movie_features(
        frame(spark, MOVIES, [(1, "Toy Story (1995)", "Animation|Comedy", 1995), (2, "Nothing", C.NO_GENRES, None)]),
        None,
        3,
    )
    expected = frame(
        spark,
        "userId int, movieId int, rating double, timestamp long, like int, release_year int, "
        "genre1 string, genre2 string",
        [
            (1, 1, 4.0, 10, 1, 1995, "Animation", "Comedy"),
            (1, 2, 2.0, 11, 0, None, C.NO_GENRES, None),
            (2, 1, 3.0, 12, 0, 1995, "Animation", "Comedy"),
            # The rating of a movie not in the table is dropped (validation quarantined it already).
        ],
    )
    assertDataFrameEqual(features.interactions(ratings, movies, 3.5), expected)
