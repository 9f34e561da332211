"""The data contract: every column name and schema sparkrec reads or writes.

Names are defined once here and imported everywhere else, so a rename is a
one-line change and a typo is an ImportError rather than a silent null column.
"""

from __future__ import annotations

import re

from pyspark.sql import types as T

# --- raw MovieLens columns (every release's files are read under these names) ---
USER_ID = "userId"
MOVIE_ID = "movieId"
RATING = "rating"
TIMESTAMP = "timestamp"
TITLE = "title"
GENRES = "genres"
TAG = "tag"
IMDB_ID = "imdbId"
TMDB_ID = "tmdbId"
TAG_ID = "tagId"
RELEVANCE = "relevance"

# Spark's PERMISSIVE CSV mode puts unparseable lines here; it must be declared
# in the schema or the bad line is silently turned into nulls.
CORRUPT = "_corrupt_record"

# --- derived columns ---
RELEASE_YEAR = "release_year"  # nullable int, from the title's "(YYYY)"; see movielens.movie_columns
GENRE1 = "genre1"  # first listed genre (the paper's input), null if none
GENRE2 = "genre2"  # second listed genre, null if fewer than two
LIKE = "like"  # 1 if rating >= like_threshold else 0
TAGS = "tags"  # array<string>: the movie's most frequent tags, most frequent first
# MovieLens stars run from 0.5 to 5.
RATING_RANGE = (0.5, 5.0)

USER_IDX = "user_idx"
MOVIE_IDX = "movie_idx"
GENRE1_IDX = "genre1_idx"
GENRE2_IDX = "genre2_idx"
YEAR_IDX = "year_idx"
TAG_IDX_COLUMNS = ("tag1_idx", "tag2_idx", "tag3_idx")

# Every vocabulary maps index 0 to "unknown or absent"; known keys start at 1.
UNKNOWN_INDEX = 0

# --- quarantine ---
SOURCE = "source"  # the input file name, e.g. ratings.csv
REASON = "reason"
RECORD = "record"  # the offending line (or its fields joined with commas)

# --- genres ---
NO_GENRES = "(no genres listed)"
# The MovieLens genre set: 19 genres plus the "(no genres listed)" marker.
# The multi-hot vector has one column per entry, in this order. Every release's
# genre names are mapped onto this list as they are read (releases.GENRE_NAMES);
# a movie with a name that maps to none is quarantined.
GENRE_LIST = (
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
    NO_GENRES,
)


def genre_flag_column(genre: str) -> str:
    """`Sci-Fi` -> `genre_sci_fi`, `(no genres listed)` -> `genre_no_genres_listed`."""
    slug = re.sub(r"[^a-z0-9]+", "_", genre.lower()).strip("_")
    return f"genre_{slug}"


GENRE_FLAG_COLUMNS = tuple(genre_flag_column(g) for g in GENRE_LIST)

# --- ML-100K's u.item: no genre list but 19 0/1 flags, one per u.genre line (releases.ML100K_GENRES) ---
RELEASE_DATE = "release_date"  # "01-Jan-1995"
VIDEO_RELEASE_DATE = "video_release_date"
IMDB_URL = "imdb_url"
ML100K_FLAG_COLUMNS = tuple(f"u_item_genre_{index}" for index in range(19))

# --- raw input schemas (declared, never inferred) ---
RATINGS_SCHEMA = T.StructType(
    [
        T.StructField(USER_ID, T.IntegerType()),
        T.StructField(MOVIE_ID, T.IntegerType()),
        T.StructField(RATING, T.DoubleType()),
        T.StructField(TIMESTAMP, T.LongType()),
    ]
)
# Kaggle's copy of ML-20M stores timestamps as "YYYY-MM-DD HH:MM:SS" strings.
RATINGS_SCHEMA_KAGGLE = T.StructType(
    [
        T.StructField(USER_ID, T.IntegerType()),
        T.StructField(MOVIE_ID, T.IntegerType()),
        T.StructField(RATING, T.DoubleType()),
        T.StructField(TIMESTAMP, T.StringType()),
    ]
)
MOVIES_SCHEMA = T.StructType(
    [
        T.StructField(MOVIE_ID, T.IntegerType()),
        T.StructField(TITLE, T.StringType()),
        T.StructField(GENRES, T.StringType()),
    ]
)
TAGS_SCHEMA = T.StructType(
    [
        T.StructField(USER_ID, T.IntegerType()),
        T.StructField(MOVIE_ID, T.IntegerType()),
        T.StructField(TAG, T.StringType()),
        T.StructField(TIMESTAMP, T.LongType()),
    ]
)
TAGS_SCHEMA_KAGGLE = T.StructType(
    [
        T.StructField(USER_ID, T.IntegerType()),
        T.StructField(MOVIE_ID, T.IntegerType()),
        T.StructField(TAG, T.StringType()),
        T.StructField(TIMESTAMP, T.StringType()),
    ]
)
U_ITEM_SCHEMA = T.StructType(
    [
        T.StructField(MOVIE_ID, T.IntegerType()),
        T.StructField(TITLE, T.StringType()),
        T.StructField(RELEASE_DATE, T.StringType()),
        T.StructField(VIDEO_RELEASE_DATE, T.StringType()),
        T.StructField(IMDB_URL, T.StringType()),
    ]
    + [T.StructField(flag, T.IntegerType()) for flag in ML100K_FLAG_COLUMNS]
)
LINKS_SCHEMA = T.StructType(
    [
        T.StructField(MOVIE_ID, T.IntegerType()),
        T.StructField(IMDB_ID, T.StringType()),  # keeps leading zeros
        T.StructField(TMDB_ID, T.IntegerType()),
    ]
)
GENOME_SCORES_SCHEMA = T.StructType(
    [
        T.StructField(MOVIE_ID, T.IntegerType()),
        T.StructField(TAG_ID, T.IntegerType()),
        T.StructField(RELEVANCE, T.DoubleType()),
    ]
)
GENOME_TAGS_SCHEMA = T.StructType(
    [
        T.StructField(TAG_ID, T.IntegerType()),
        T.StructField(TAG, T.StringType()),
    ]
)

QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField(SOURCE, T.StringType(), False),
        T.StructField(REASON, T.StringType(), False),
        T.StructField(RECORD, T.StringType()),
    ]
)

# --- model-ready split columns (Petastorm train/ and test/) ---
# All scalars, no nulls: readable by petastorm's make_reader and make_batch_reader.
SPLIT_INT_COLUMNS = (
    USER_IDX,
    MOVIE_IDX,
    GENRE1_IDX,
    GENRE2_IDX,
    YEAR_IDX,
    *TAG_IDX_COLUMNS,
    USER_ID,
    MOVIE_ID,
    LIKE,
)
SPLIT_SCHEMA = T.StructType(
    [T.StructField(c, T.IntegerType(), False) for c in SPLIT_INT_COLUMNS]
    + [
        T.StructField(RATING, T.FloatType(), False),
        T.StructField(TIMESTAMP, T.LongType(), False),
    ]
    + [T.StructField(c, T.ByteType(), False) for c in GENRE_FLAG_COLUMNS]
)

# --- the movie feature table (movies/): one row per catalogue movie ---
MOVIE_FEATURE_COLUMNS = (
    MOVIE_ID,
    TITLE,
    GENRES,
    RELEASE_YEAR,
    MOVIE_IDX,
    GENRE1_IDX,
    GENRE2_IDX,
    YEAR_IDX,
    *TAG_IDX_COLUMNS,
    *GENRE_FLAG_COLUMNS,
)

# --- vocabularies (vocab/<name>/, Parquet: key column, index column) ---
VOCABULARIES = {
    "user": (USER_ID, USER_IDX),
    "movie": (MOVIE_ID, MOVIE_IDX),
    "genre": ("genre", "genre_idx"),
    "year": ("year", YEAR_IDX),
    "tag": (TAG, "tag_idx"),
}
VOCABULARY_NAMES = tuple(sorted(VOCABULARIES))
# Which vocabulary (manifest vocab_sizes key) bounds each index column.
INDEX_VOCABULARY = {
    USER_IDX: "user",
    MOVIE_IDX: "movie",
    GENRE1_IDX: "genre",
    GENRE2_IDX: "genre",
    YEAR_IDX: "year",
    **{column: "tag" for column in TAG_IDX_COLUMNS},
}

# --- the scoring job's recommendations, and the per-user lists it scores from ---
RANK = "rank"  # 1 = best
SCORE = "score"  # the model's output for the pair
WATCHED = "watched"  # array<int>: the catalogue movies a user has rated
LIKED = "liked"  # array<int>: those of them the user liked
RECOMMENDATION_COLUMNS = (USER_ID, RANK, MOVIE_ID, TITLE, GENRES, SCORE)
SCORED_SCHEMA = T.StructType(
    [
        T.StructField(USER_ID, T.IntegerType(), False),
        T.StructField(RANK, T.IntegerType(), False),
        T.StructField(MOVIE_ID, T.IntegerType(), False),
        T.StructField(SCORE, T.FloatType(), False),
    ]
)
