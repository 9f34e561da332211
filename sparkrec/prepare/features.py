"""Feature transformations, each a pure DataFrame -> DataFrame function."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sparkrec.core import columns as C

# A year, or a year range such as "(2006-2007)" or "(2007-)", closing the title.
# The first year of a range is the release year.
_YEAR_AT_END = r"\((\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?)?\)$"


def release_year(title: Column) -> Column:
    """The year in parentheses that ends the (trimmed) title, else null."""
    year = F.regexp_extract(F.trim(title), _YEAR_AT_END, 1)
    return F.when(year != "", year.cast(T.IntegerType()))


def genre_list(genres: Column) -> Column:
    return F.split(genres, r"\|")


def like_label(rating: Column, threshold: float) -> Column:
    """1 when rating >= threshold. The paper says "less than 3.5 is a dislike, above
    3.5 a like" and is silent on 3.5 itself; we count exactly 3.5 as a like."""
    return (rating >= F.lit(threshold)).cast(T.IntegerType())


def movie_tags(tags: DataFrame, top_n: int) -> DataFrame:
    """Per movie, its `top_n` most applied tags (lower-cased), most frequent first, ties by name."""
    counted = tags.select(C.MOVIE_ID, F.lower(F.trim(F.col(C.TAG))).alias(C.TAG)).groupBy(C.MOVIE_ID, C.TAG).count()
    ranked = counted.withColumn(
        "_rank", F.row_number().over(Window.partitionBy(C.MOVIE_ID).orderBy(F.desc("count"), C.TAG))
    ).filter(F.col("_rank") <= top_n)
    return ranked.groupBy(C.MOVIE_ID).agg(
        F.transform(F.array_sort(F.collect_list(F.struct("_rank", C.TAG))), lambda s: s[C.TAG]).alias(C.TAGS)
    )


def movie_features(movies: DataFrame, tags: DataFrame | None, top_tags: int) -> DataFrame:
    """One row per movie: title, genres, release year, genre1/genre2, multi-hot flags, tags."""
    listed = genre_list(F.col(C.GENRES))
    enriched = movies.select(
        C.MOVIE_ID,
        C.TITLE,
        C.GENRES,
        C.RELEASE_YEAR,
        listed.getItem(0).alias(C.GENRE1),
        F.get(listed, 1).alias(C.GENRE2),
        *[
            F.array_contains(listed, genre).cast(T.ByteType()).alias(flag)
            for genre, flag in zip(C.GENRE_LIST, C.GENRE_FLAG_COLUMNS)
        ],
    )
    if tags is None:
        return enriched.withColumn(C.TAGS, F.array().cast(T.ArrayType(T.StringType())))
    with_tags = enriched.join(movie_tags(tags, top_tags), C.MOVIE_ID, "left")
    return with_tags.withColumn(C.TAGS, F.coalesce(C.TAGS, F.array().cast(T.ArrayType(T.StringType()))))


# The interactions table: each rating with the movie fields the paper's model reads.
# Title, genre list, multi-hot flags and tags stay once per movie in movies/ (join on
# movieId): repeating them on 20M rows made the table's write 2.4x slower (docs/benchmarks.md).
INTERACTION_COLUMNS = (
    C.USER_ID,
    C.MOVIE_ID,
    C.RATING,
    C.TIMESTAMP,
    C.LIKE,
    C.RELEASE_YEAR,
    C.GENRE1,
    C.GENRE2,
)


def labelled(ratings: DataFrame, like_threshold: float) -> DataFrame:
    return ratings.withColumn(C.LIKE, like_label(F.col(C.RATING), like_threshold))


def interactions(ratings: DataFrame, movies: DataFrame, like_threshold: float) -> DataFrame:
    """Every valid rating with its movie's model fields (the catalogue is small: broadcast)."""
    joined = ratings.join(F.broadcast(movies), C.MOVIE_ID, "inner")
    return labelled(joined, like_threshold).select(*INTERACTION_COLUMNS)
