"""Every quarantine rule of sparkrec.prepare.validation on literal rows: one row per reason, the order
in which rules are applied, which copy of a duplicate is kept, the quarantine record, the
bad-fraction threshold. A broken rule fails here with a row diff, not after a prepare run as
a count mismatch."""

from __future__ import annotations

import pytest
from pyspark.testing import assertDataFrameEqual

from sparkrec.core import columns as C
from sparkrec.prepare import validation as V

from helpers import frame

NAN = float("nan")
BAD = "\ufffd"  # what the reader decodes an invalid UTF-8 byte to

MOVIES = "movieId int, title string, genres string, release_year int, _corrupt_record string"
RATINGS = "userId int, movieId int, rating double, timestamp long, _corrupt_record string"
TAGS = "userId int, movieId int, tag string, timestamp long, _corrupt_record string"
LINKS = "movieId int, imdbId string, tmdbId int, _corrupt_record string"
WITH_REASON = ", reason string"


def classified(spark, schema: str, rows: list[tuple]):
    """The expected classification: the input columns plus `reason` (the last value of each row)."""
    return frame(spark, schema + WITH_REASON, rows)


def known_movies(spark, *ids: int):
    return frame(spark, "movieId int", [(movie,) for movie in ids])


# --- movies ---


def test_classify_movies_one_row_per_reason(spark):
    rows = [
        (1, "Toy Story (1995)", "Animation|Children|Comedy", 1995, None, None),
        (2, "Pull My Daisy (1958)", C.NO_GENRES, 1958, None, None),
        (3, None, "Drama", None, None, V.MALFORMED),
        (None, "No Id (1990)", "Drama", 1990, None, V.MALFORMED),
        (4, "No Genres (1990)", None, 1990, None, V.MALFORMED),
        # Spark kept the line it could not parse: malformed whatever the parsed fields say.
        (5, "Heat (1995)", "Crime", 1995, "5,Heat (1995),Crime,extra", V.MALFORMED),
        (6, f"Caf{BAD} (2001)", "Drama", 2001, None, V.UNDECODABLE),
        (7, "Typo (1999)", "Comedy|Documentry", 1999, None, V.UNMAPPED_GENRE),
        # The reader maps each release's names onto ours; validation accepts ours only, case and all.
        (8, "Old Name (1990)", "Children's", 1990, None, V.UNMAPPED_GENRE),
        (9, "Lower (1990)", "drama", 1990, None, V.UNMAPPED_GENRE),
        (10, "Trailing Pipe (1990)", "Drama|", 1990, None, V.UNMAPPED_GENRE),
    ]
    movies = frame(spark, MOVIES, [row[:-1] for row in rows])
    assertDataFrameEqual(V.classify_movies(movies), classified(spark, MOVIES, rows))


def test_classify_movies_first_broken_rule_wins(spark):
    rows = [
        (1, f"Caf{BAD} (2001)", "Documentry", 2001, "1,Caf\ufffd (2001),Documentry,x", V.MALFORMED),
        (2, None, "Documentry", None, None, V.MALFORMED),
        (3, f"Caf{BAD} (2001)", "Documentry", 2001, None, V.UNDECODABLE),
    ]
    movies = frame(spark, MOVIES, [row[:-1] for row in rows])
    assertDataFrameEqual(V.classify_movies(movies), classified(spark, MOVIES, rows))


def test_duplicate_movie_id_keeps_the_first_good_copy_by_title_then_genres(spark):
    # Listed with the kept copy last: file order must not decide which copy stays.
    rows = [
        (10, "B Title (1990)", "Drama", 1990, None, V.DUPLICATE_MOVIE),
        (10, "A Title (1990)", "Drama", 1990, None, V.DUPLICATE_MOVIE),
        (10, "A Title (1990)", "Action", 1990, None, None),
        # A broken copy is quarantined for what breaks it and does not displace the good one,
        # although its title sorts first.
        (11, f"A{BAD} (1990)", "Drama", 1990, None, V.UNDECODABLE),
        (11, "Z Title (1990)", "Drama", 1990, None, None),
        (12, "A Typo (1990)", "Documentry", 1990, None, V.UNMAPPED_GENRE),
        (12, "B Typo (1990)", "Documentry", 1990, None, V.UNMAPPED_GENRE),
        # An exact copy: one stays.
        (13, "Twice (2000)", "Drama", 2000, None, V.DUPLICATE_MOVIE),
        (13, "Twice (2000)", "Drama", 2000, None, None),
    ]
    movies = frame(spark, MOVIES, [row[:-1] for row in rows])
    assertDataFrameEqual(V.classify_movies(movies), classified(spark, MOVIES, rows))


# --- ratings ---


def test_classify_ratings_one_row_per_reason(spark):
    rows = [
        (1, 1, 4.0, 100, None, None),
        (1, 2, 0.5, 100, None, None),
        (1, 3, 5.0, 100, None, None),
        (1, 4, 3.5, 100, None, None),
        (2, 1, None, 100, None, V.MALFORMED),
        (2, 2, 3.0, None, None, V.MALFORMED),
        (None, 3, 3.0, 100, None, V.MALFORMED),
        (2, None, 3.0, 100, None, V.MALFORMED),
        (2, 4, None, None, "2,4,three,yesterday", V.MALFORMED),
        (3, 1, 0.0, 100, None, V.RATING_OUT_OF_RANGE),
        (3, 2, 5.5, 100, None, V.RATING_OUT_OF_RANGE),
        (3, 3, -1.0, 100, None, V.RATING_OUT_OF_RANGE),
        (3, 4, NAN, 100, None, V.RATING_OUT_OF_RANGE),
        (4, 1, 3.25, 100, None, V.RATING_OFF_GRID),
        (4, 2, 0.75, 100, None, V.RATING_OFF_GRID),
        (5, 9, 4.0, 100, None, V.UNKNOWN_MOVIE),
    ]
    ratings = frame(spark, RATINGS, [row[:-1] for row in rows])
    actual = V.classify_ratings(ratings, known_movies(spark, 1, 2, 3, 4))
    # NaN equals any float in assertDataFrameEqual's comparison: the reason column is what is checked.
    assertDataFrameEqual(actual, classified(spark, RATINGS, rows))


def test_classify_ratings_first_broken_rule_wins(spark):
    rows = [
        (6, 9, None, 100, "6,9,,100", V.MALFORMED),
        (6, 8, 7.25, 100, None, V.RATING_OUT_OF_RANGE),
        (6, 7, 3.25, 100, None, V.RATING_OFF_GRID),
        (7, 9, 3.5, 100, None, V.UNKNOWN_MOVIE),
    ]
    ratings = frame(spark, RATINGS, [row[:-1] for row in rows])
    actual = V.classify_ratings(ratings, known_movies(spark, 1))
    assertDataFrameEqual(actual, classified(spark, RATINGS, rows))


def test_whole_star_releases_quarantine_half_stars(spark):
    rows = [
        (1, 1, 1.0, 100, None, None),
        (1, 2, 5.0, 100, None, None),
        (1, 3, 3.5, 100, None, V.RATING_OFF_WHOLE_STARS),
        # In range, but no whole star: ML-100K and ML-1M had no half stars, so no 0.5 either.
        (1, 4, 0.5, 100, None, V.RATING_OFF_WHOLE_STARS),
        (1, 5, 4.25, 100, None, V.RATING_OFF_WHOLE_STARS),
        (1, 6, 0.0, 100, None, V.RATING_OUT_OF_RANGE),
    ]
    ratings = frame(spark, RATINGS, [row[:-1] for row in rows])
    actual = V.classify_ratings(ratings, known_movies(spark, 1, 2, 3, 4, 5, 6), whole_stars=True)
    assertDataFrameEqual(actual, classified(spark, RATINGS, rows))


def test_duplicate_rating_keeps_the_earliest_then_the_lower(spark):
    rows = [
        (7, 1, 2.0, 200, None, V.DUPLICATE_RATING),
        (7, 1, 4.0, 100, None, None),
        (7, 2, 4.0, 100, None, V.DUPLICATE_RATING),
        (7, 2, 3.0, 100, None, None),
        (7, 3, 1.0, 300, None, V.DUPLICATE_RATING),
        (7, 3, 2.0, 200, None, V.DUPLICATE_RATING),
        (7, 3, 3.0, 100, None, None),
        # An earlier copy that breaks a rule is quarantined for that rule; the good one stays.
        (8, 1, 3.25, 100, None, V.RATING_OFF_GRID),
        (8, 1, 4.0, 200, None, None),
        # Copies that are bad anyway all keep their own reason.
        (8, 9, 4.0, 100, None, V.UNKNOWN_MOVIE),
        (8, 9, 4.0, 200, None, V.UNKNOWN_MOVIE),
        # Another user's rating of the same movie is no duplicate.
        (9, 1, 4.0, 100, None, None),
    ]
    ratings = frame(spark, RATINGS, [row[:-1] for row in rows])
    actual = V.classify_ratings(ratings, known_movies(spark, 1, 2, 3))
    assertDataFrameEqual(actual, classified(spark, RATINGS, rows))


# --- tags and links ---


def test_classify_tags_one_row_per_reason_and_no_duplicate_rule(spark):
    rows = [
        (1, 1, "funny", 10, None, None),
        # A tag applied twice is two observations, both kept.
        (1, 1, "funny", 10, None, None),
        (1, 2, "   ", 10, None, V.MALFORMED),
        (1, 2, "", 11, None, V.MALFORMED),
        (1, 2, None, 12, None, V.MALFORMED),
        (1, 2, "dark", None, None, V.MALFORMED),
        (1, 2, "dark", 13, "1,2,dark,13,extra", V.MALFORMED),
        (1, 3, f"caf{BAD}", 10, None, V.UNDECODABLE),
        (1, 9, "orphan", 10, None, V.UNKNOWN_MOVIE),
        # Rule order: blank before undecodable before unknown movie.
        (2, 9, " ", 10, None, V.MALFORMED),
        (2, 9, f"caf{BAD}", 10, None, V.UNDECODABLE),
    ]
    tags = frame(spark, TAGS, [row[:-1] for row in rows])
    actual = V.classify_tags(tags, known_movies(spark, 1, 2, 3))
    assertDataFrameEqual(actual, classified(spark, TAGS, rows))


def test_classify_links_tmdb_id_may_be_empty(spark):
    rows = [
        (1, "0114709", 862, None, None),
        (2, "0113497", None, None, None),
        (3, None, 5, None, V.MALFORMED),
        (None, "0111111", 1, None, V.MALFORMED),
        (3, "0113228", None, "3,0113228,not-a-number", V.MALFORMED),
        (9, "0999999", 1, None, V.UNKNOWN_MOVIE),
        (9, None, 1, None, V.MALFORMED),
    ]
    links = frame(spark, LINKS, [row[:-1] for row in rows])
    actual = V.classify_links(links, known_movies(spark, 1, 2, 3))
    assertDataFrameEqual(actual, classified(spark, LINKS, rows))


# --- splitting the classification ---


def movies_sample(spark):
    return V.classify_movies(
        frame(
            spark,
            MOVIES,
            [
                (1, "Toy Story (1995)", "Animation", 1995, None),
                (2, None, "Drama", None, None),
                (3, '"Heat, The" (1995)', "Crime", None, '3,"Heat, The" (1995),Crime,x'),
                (4, f"Caf{BAD} (2001)", "Drama", 2001, None),
                (5, "Odd, The (1999)", "Comedy|Documentry", 1999, None),
            ],
        )
    )


def test_good_keeps_the_columns_and_the_derived_year(spark):
    expected = frame(
        spark,
        "movieId int, title string, genres string, release_year int",
        [(1, "Toy Story (1995)", "Animation", 1995)],
    )
    assertDataFrameEqual(V.good(movies_sample(spark)), expected)


def test_quarantine_record_is_the_raw_line_or_the_fields_joined(spark):
    expected = frame(
        spark,
        C.QUARANTINE_SCHEMA,
        [
            ("movies.csv", V.MALFORMED, "2,,Drama"),
            # The line as Spark read it, quotes and all.
            ("movies.csv", V.MALFORMED, '3,"Heat, The" (1995),Crime,x'),
            # Fields joined back, unquoted; the derived year is no part of the line.
            ("movies.csv", V.UNDECODABLE, f"4,Caf{BAD} (2001),Drama"),
            ("movies.csv", V.UNMAPPED_GENRE, "5,Odd, The (1999),Comedy|Documentry"),
        ],
    )
    assertDataFrameEqual(V.quarantined(movies_sample(spark), "movies.csv"), expected)


def test_quarantine_record_of_ratings_formats_numbers_as_spark_does(spark):
    ratings = frame(spark, RATINGS, [(4, 1, 3.25, 100, None), (2, 1, None, 100, None), (5, 9, 4.0, 100, None)])
    expected = frame(
        spark,
        C.QUARANTINE_SCHEMA,
        [
            ("ratings.csv", V.RATING_OFF_GRID, "4,1,3.25,100"),
            ("ratings.csv", V.MALFORMED, "2,1,,100"),
            ("ratings.csv", V.UNKNOWN_MOVIE, "5,9,4.0,100"),
        ],
    )
    actual = V.quarantined(V.classify_ratings(ratings, known_movies(spark, 1)), "ratings.csv")
    assertDataFrameEqual(actual, expected)


def test_reason_counts_names_good_rows_ok(spark):
    assert V.reason_counts(movies_sample(spark)) == {
        "ok": 1,
        V.MALFORMED: 2,
        V.UNDECODABLE: 1,
        V.UNMAPPED_GENRE: 1,
    }


# --- the threshold ---


@pytest.mark.parametrize(
    "counts, max_fraction",
    [
        ({"ok": 9, V.UNKNOWN_MOVIE: 1}, 0.1),  # exactly at the limit passes
        ({"ok": 7, V.UNKNOWN_MOVIE: 2, V.MALFORMED: 1}, 0.3),
        ({"ok": 5}, 0.0),
        ({}, 0.0),  # an empty file rejects nothing
    ],
)
def test_bad_fraction_at_or_below_the_limit_passes(counts, max_fraction):
    V.check_bad_fraction("ratings.csv", counts, max_fraction)


@pytest.mark.parametrize(
    "counts, max_fraction, message",
    [
        (
            {"ok": 8999, V.MALFORMED: 1001},
            0.1,
            "ratings.csv: 1,001 of 10,000 rows rejected (10.01%), above max_bad_fraction=0.1; "
            "most common reason malformed_row (1,001)",
        ),
        (
            {"ok": 9, V.UNKNOWN_MOVIE: 1},
            0.0999,
            "ratings.csv: 1 of 10 rows rejected (10.00%), above max_bad_fraction=0.0999; "
            "most common reason unknown_movie (1)",
        ),
        (
            {"ok": 4, V.MALFORMED: 1, V.UNKNOWN_MOVIE: 3, V.RATING_OFF_GRID: 2},
            0.5,
            "ratings.csv: 6 of 10 rows rejected (60.00%), above max_bad_fraction=0.5; "
            "most common reason unknown_movie (3)",
        ),
        # A tie names the reason last in name order, whatever order the counts came in.
        (
            {V.UNKNOWN_MOVIE: 2, V.MALFORMED: 2},
            0.0,
            "ratings.csv: 4 of 4 rows rejected (100.00%), above max_bad_fraction=0.0; "
            "most common reason unknown_movie (2)",
        ),
        (
            {V.MALFORMED: 2, V.UNKNOWN_MOVIE: 2},
            0.0,
            "ratings.csv: 4 of 4 rows rejected (100.00%), above max_bad_fraction=0.0; "
            "most common reason unknown_movie (2)",
        ),
    ],
)
def test_bad_fraction_above_the_limit_fails_in_one_line(counts, max_fraction, message):
    with pytest.raises(V.TooManyBadRows) as caught:
        V.check_bad_fraction("ratings.csv", counts, max_fraction)
    assert str(caught.value) == message
