"""Row validation: every input row either passes or gets a quarantine reason.

Each `classify_*` function returns its declared columns (movies also the
year the reader derived), `_corrupt_record` and a `reason` column: null for a
good row, else the first rule the row breaks. Callers cache the result and
split it with `good` / `quarantined`, so nothing is dropped silently.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from sparkrec.core import columns as C
from sparkrec.core.errors import SparkrecError
from sparkrec.prepare import features

MALFORMED = "malformed_row"
# Not valid UTF-8: the reader decoded the bytes it could not as U+FFFD.
UNDECODABLE = "undecodable_text"
UNMAPPED_GENRE = "unmapped_genre"
RATING_OUT_OF_RANGE = "rating_out_of_range"
RATING_OFF_GRID = "rating_off_half_star_grid"
RATING_OFF_WHOLE_STARS = "rating_off_whole_star_grid"
UNKNOWN_MOVIE = "unknown_movie"
DUPLICATE_RATING = "duplicate_user_movie_rating"
DUPLICATE_MOVIE = "duplicate_movie_id"

MIN_RATING = 0.5
MAX_RATING = 5.0
REPLACEMENT_CHARACTER = "\ufffd"
# Columns the reader derives, not part of the input line a quarantine record shows.
DERIVED = (C.RELEASE_YEAR,)


def _first_failure(*rules: tuple[Column, str]) -> Column:
    """The reason of the first rule whose condition holds, else null."""
    expr = None
    for condition, reason in reversed(rules):
        expr = F.when(condition, F.lit(reason)).otherwise(expr if expr is not None else F.lit(None))
    return expr


def _malformed(required: list[str]) -> Column:
    condition = F.col(C.CORRUPT).isNotNull()
    for name in required:
        condition = condition | F.col(name).isNull()
    return condition


def _record(fields: list[str]) -> Column:
    """The raw line when Spark kept it, else the parsed fields joined back with commas."""
    joined = F.concat_ws(",", *[F.coalesce(F.col(f).cast("string"), F.lit("")) for f in fields])
    return F.coalesce(F.col(C.CORRUPT), joined)


def _known_movie_flag(frame: DataFrame, movie_ids: DataFrame) -> DataFrame:
    known = movie_ids.select(C.MOVIE_ID).withColumn("_known_movie", F.lit(True))
    return frame.join(F.broadcast(known), C.MOVIE_ID, "left")


def _undecodable(name: str) -> Column:
    return F.col(name).contains(REPLACEMENT_CHARACTER)


def classify_movies(movies: DataFrame) -> DataFrame:
    """Movies need an id, a decodable title and a genre list in our genre names (columns.GENRE_LIST);
    a repeated id keeps its first title."""
    fields = [C.MOVIE_ID, C.TITLE, C.GENRES]
    unmapped = F.exists(features.genre_list(F.col(C.GENRES)), lambda genre: ~genre.isin(*C.GENRE_LIST))
    base = _first_failure(
        (_malformed(fields), MALFORMED),
        (_undecodable(C.TITLE), UNDECODABLE),
        (unmapped, UNMAPPED_GENRE),
    )
    rank = F.row_number().over(Window.partitionBy(C.MOVIE_ID, base.isNull()).orderBy(C.TITLE, C.GENRES))
    return movies.select(
        *fields, *DERIVED, C.CORRUPT, F.coalesce(base, F.when(rank > 1, F.lit(DUPLICATE_MOVIE))).alias(C.REASON)
    )


def classify_ratings(ratings: DataFrame, movies: DataFrame, whole_stars: bool = False) -> DataFrame:
    """Ratings on the half-star grid 0.5..5.0 (whole stars for the releases that had no
    half stars), of a known movie, one per (user, movie).

    Of duplicate (user, movie) pairs the earliest rating is kept (ties: the
    lower rating) and the later ones are quarantined.
    """
    fields = [C.USER_ID, C.MOVIE_ID, C.RATING, C.TIMESTAMP]
    flagged = _known_movie_flag(ratings, movies)
    rating = F.col(C.RATING)
    if whole_stars:
        grid = (rating != F.round(rating), RATING_OFF_WHOLE_STARS)
    else:
        grid = ((rating * 2) != F.round(rating * 2), RATING_OFF_GRID)
    base = _first_failure(
        (_malformed(fields), MALFORMED),
        ((rating < MIN_RATING) | (rating > MAX_RATING) | F.isnan(rating), RATING_OUT_OF_RANGE),
        grid,
        (F.col("_known_movie").isNull(), UNKNOWN_MOVIE),
    )
    rank = F.row_number().over(Window.partitionBy(C.USER_ID, C.MOVIE_ID, base.isNull()).orderBy(C.TIMESTAMP, C.RATING))
    return flagged.select(
        *fields, C.CORRUPT, F.coalesce(base, F.when(rank > 1, F.lit(DUPLICATE_RATING))).alias(C.REASON)
    )


def classify_tags(tags: DataFrame, movies: DataFrame) -> DataFrame:
    fields = [C.USER_ID, C.MOVIE_ID, C.TAG, C.TIMESTAMP]
    flagged = _known_movie_flag(tags, movies)
    reason = _first_failure(
        (_malformed(fields) | (F.trim(F.col(C.TAG)) == ""), MALFORMED),
        (_undecodable(C.TAG), UNDECODABLE),
        (F.col("_known_movie").isNull(), UNKNOWN_MOVIE),
    )
    return flagged.select(*fields, C.CORRUPT, reason.alias(C.REASON))


def classify_links(links: DataFrame, movies: DataFrame) -> DataFrame:
    """imdbId is required; tmdbId may be empty (MovieLens leaves some blank)."""
    fields = [C.MOVIE_ID, C.IMDB_ID, C.TMDB_ID]
    flagged = _known_movie_flag(links, movies)
    reason = _first_failure(
        (_malformed([C.MOVIE_ID, C.IMDB_ID]), MALFORMED),
        (F.col("_known_movie").isNull(), UNKNOWN_MOVIE),
    )
    return flagged.select(*fields, C.CORRUPT, reason.alias(C.REASON))


def good(classified: DataFrame) -> DataFrame:
    return classified.filter(F.col(C.REASON).isNull()).drop(C.REASON, C.CORRUPT)


def quarantined(classified: DataFrame, source: str) -> DataFrame:
    """Rejected rows as (source, reason, record); the record is built for bad rows only."""
    fields = [name for name in classified.columns if name not in (C.REASON, C.CORRUPT, *DERIVED)]
    return classified.filter(F.col(C.REASON).isNotNull()).select(
        F.lit(source).alias(C.SOURCE), C.REASON, _record(fields).alias(C.RECORD)
    )


def reason_counts(classified: DataFrame) -> dict[str, int]:
    """{"ok": good rows, reason: rows, ...} in one pass."""
    rows = classified.groupBy(C.REASON).count().collect()
    return {(row[C.REASON] or "ok"): int(row["count"]) for row in rows}


class TooManyBadRows(SparkrecError):
    pass


def check_bad_fraction(source: str, counts: dict[str, int], max_fraction: float) -> None:
    """Fail when a file's rejected share is above the configured threshold."""
    total = sum(counts.values())
    bad = {reason: n for reason, n in counts.items() if reason != "ok"}
    rejected = sum(bad.values())
    if total and rejected / total > max_fraction:
        worst = max(bad, key=lambda reason: (bad[reason], reason))
        raise TooManyBadRows(
            f"{source}: {rejected:,} of {total:,} rows rejected ({rejected / total:.2%}), "
            f"above max_bad_fraction={max_fraction}; most common reason {worst} ({bad[worst]:,})"
        )
