"""The generator's shape: ML-20M's published figures, the hidden model's constants, the layouts, one run's settings."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from sparkrec.core import columns as C
from sparkrec.core.config import ConfigError
from sparkrec.prepare import releases

# --- the published ML-20M shape ---
FULL_USERS = 138_493
FULL_MOVIES = 27_278
FULL_RATINGS = 20_000_263
FULL_TAGS = 465_564
FULL_GENOME_MOVIES = 10_381
FULL_MAX_MOVIE_ID = 131_262
STAR_COUNTS = {
    0.5: 239_125,
    1.0: 680_732,
    1.5: 279_252,
    2.0: 1_430_997,
    2.5: 883_398,
    3.0: 4_291_193,
    3.5: 2_200_156,
    4.0: 5_561_926,
    4.5: 1_534_824,
    5.0: 2_898_660,
}
STARS = tuple(STAR_COUNTS)
WHOLE_STARS = tuple(s for s in STARS if s == int(s))
MIN_RATINGS_PER_USER = 20
# Rating counts saturate towards this share of the catalogue, which at full
# scale puts the most active users near ML-20M's 9,254 ratings.
MAX_RATED_SHARE = 0.5
MIN_SCALED_MOVIES = 1_000
# Below this a catalogue cannot hold 20 distinct ratings per user comfortably.
MIN_MOVIES = 100

FIRST_TIMESTAMP = 789_609_600  # 1995-01-09 UTC
LAST_TIMESTAMP = 1_427_846_399  # 2015-03-31 23:59:59 UTC
HALF_STARS_FROM = 1_045_526_400  # 2003-02-18 UTC: MovieLens allowed half stars from then on
TAGGING_FROM = 1_135_382_400  # 2005-12-24 UTC: ML-20M's tags begin in late December 2005
FIRST_YEAR, LAST_YEAR = 1900, 2015

USERS_PER_CHUNK = 5_000
DEFAULT_SEED = 42

# --- the hidden preference model (all in latent-score units) ---


@dataclass(frozen=True)
class PreferenceModel:
    """The hidden preference model; generator.json records it field for field."""

    latent_dim: int = 8
    user_bias_sd: float = 0.45
    movie_bias_sd: float = 0.45
    # Popular movies are rated higher in ML-20M; this ties movie bias to popularity.
    popularity_bias_correlation: float = 0.5
    factor_score_sd: float = 0.35  # sd of the user-factor . movie-factor product
    genre_mean_sd: float = 0.15  # how much genres differ for everyone
    genre_affinity_sd: float = 0.4  # how much users differ per genre
    year_effect_per_decade: float = 0.05  # older movies that are still rated are the good ones
    noise_sd: float = 0.75
    # Rated movies: a user meets exposure_per_rating times as many movies as they
    # rate, drawn by popularity, and rates a weighted draw of them without
    # replacement, weight exp(selection_strength * appeal), where appeal is the
    # personal part of the score (factors and genre affinities, sd about 0.5).
    exposure_per_rating: float = 2.0
    selection_strength: float = 2.0


MODEL = PreferenceModel()

# --- catalogue shape ---
# Popularity weight of the movie with popularity rank r (1 = most popular) is
# (r + offset)^-exponent: a Zipf law flattened at the head. With the choice among
# the movies a user meets (EXPOSURE_PER_RATING), at full scale the top movie gets
# 67,591 ratings and the median movie 19 (ML-20M: 67,310 and 18).
POPULARITY_OFFSET = 150.0  # at full scale; scaled with the catalogue size
POPULARITY_EXPONENT = 2.8
RELEASE_AGE_SCALE = 28.0  # years; the catalogue is skewed towards recent releases
# About ML-20M's movies per genre, which sets how often each genre is drawn.
GENRE_WEIGHTS = {
    "Action": 3520,
    "Adventure": 2329,
    "Animation": 1027,
    "Children": 1139,
    "Comedy": 8374,
    "Crime": 2939,
    "Documentary": 2471,
    "Drama": 13344,
    "Fantasy": 1412,
    "Film-Noir": 330,
    "Horror": 2611,
    "IMAX": 196,
    "Musical": 1036,
    "Mystery": 1514,
    "Romance": 4127,
    "Sci-Fi": 1743,
    "Thriller": 4178,
    "War": 1194,
    "Western": 676,
}
GENRES_PER_MOVIE_SHARES = (0.37, 0.33, 0.20, 0.10)  # 1..4 genres, ~2 on average as in ML-20M
NO_GENRES_SHARE = 0.009
# Title quirks real MovieLens has, each on a small share of movies.
TITLE_QUIRK_SHARES = {
    "article": 0.06,  # "Name, The (1995)": the comma forces CSV quoting
    "alias": 0.05,  # "Name (Other Name) (1995)"
    "quoted": 0.005,  # '"Name" Word (1995)': doubled quotes inside a quoted field
    "trailing_space": 0.004,  # "Name (1995) "
    "no_year": 0.003,  # "Name"
    "year_range": 0.003,  # "Name (2006-2008)" or, still running, "Name (2014-)"
}
MISSING_TMDB_SHARE = 0.009
MAX_IMDB_ID = 4_999_999  # imdbId is written zero-padded to 7 digits
MAX_TMDB_ID = 400_000

# --- users ---
RATING_COUNT_SIGMA = 1.35  # lognormal spread of ratings above the minimum
ACTIVITY_DAYS = 200.0  # mean length of a user's rating period
# Only a few percent of MovieLens users tag; taggers tag a share of what they
# rate so that tags number ~2.3% of ratings, as in ML-20M.
TAGGER_SHARE = 0.056
TAG_PROBABILITY = FULL_TAGS / FULL_RATINGS / TAGGER_SHARE
GENERIC_TAG_SHARE = 0.3

GENERIC_TAGS = (
    "classic",
    "cult film",
    "overrated",
    "underrated",
    "must see",
    "seen more than once",
    "boring",
    "predictable",
    "good dialogue",
    "visually appealing",
    "stylized",
    "slow, but worth it",
    'so "bad" it\'s good',
    "netflix queue",
    "based on a book",
)
GENRE_TAGS = {
    "Action": ("action", "explosions", "car chase", "martial arts", "fight scenes"),
    "Adventure": ("adventure", "treasure hunt", "journey", "epic"),
    "Animation": ("animation", "stop motion", "anime", "hand-drawn"),
    "Children": ("kids", "family", "talking animals", "coming of age"),
    "Comedy": ("funny", "comedy", "dark comedy", "quirky", "satire", "hilarious"),
    "Crime": ("crime", "heist", "mafia", "police", "gangsters"),
    "Documentary": ("documentary", "true story", "history", "politics"),
    "Drama": ("drama", "atmospheric", "thought-provoking", "tearjerker", "great acting"),
    "Fantasy": ("fantasy", "magic", "dragons", "fairy tale"),
    "Film-Noir": ("noir", "femme fatale", "black and white", "detective"),
    "Horror": ("horror", "scary", "gore", "zombies", "vampires"),
    "IMAX": ("imax", "visually stunning", "3d"),
    "Musical": ("musical", "great soundtrack", "singing", "dance"),
    "Mystery": ("mystery", "twist ending", "whodunit", "suspense"),
    "Romance": ("romance", "love story", "romantic comedy", "chick flick"),
    "Sci-Fi": ("sci-fi", "space", "time travel", "aliens", "dystopia", "artificial intelligence"),
    "Thriller": ("thriller", "tense", "psychological", "serial killer"),
    "War": ("war", "world war ii", "vietnam", "anti-war"),
    "Western": ("western", "cowboys", "gunfights"),
}
DEFAULT_GENOME_TAGS = 50


@dataclass(frozen=True)
class GenomeModel:
    """Genome relevance is a logistic of this: low unless the tag's genre is the movie's."""

    base_logit: float = -3.0
    match_logit: float = 3.5
    noise_sd: float = 1.0


GENOME = GenomeModel()


# Pieces of pronounceable fake words.
ONSETS = (
    "b",
    "bl",
    "br",
    "c",
    "ch",
    "cl",
    "cr",
    "d",
    "dr",
    "f",
    "fl",
    "fr",
    "g",
    "gl",
    "gr",
    "h",
    "j",
    "k",
    "l",
    "m",
    "n",
    "p",
    "pl",
    "pr",
    "r",
    "s",
    "sh",
    "sk",
    "sl",
    "st",
    "t",
    "th",
    "tr",
    "v",
    "w",
    "z",
)
VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ee", "oo", "ou")
CODAS = ("", "", "", "n", "r", "s", "l", "m", "nd", "st", "th")
# Random syllables can spell words nobody wants in a demo title.
BLOCKED_WORDS = re.compile(
    "anal|ass|bitch|butt|cock|cum|cunt|dick|fag|fuc|fuk|homo|jiz|nig|piss|porn|prick|puss|rape|"
    "sex|shit|slut|tard|tit|twat|wank|whor",
    re.IGNORECASE,
)
CONNECTORS = ("of the", "and the", "in", "of", "and", "at the")
ARTICLES = ("The", "A", "An")

# Independent random streams, so one part of the dataset never shifts another.
CATALOGUE_STREAM, COUNTS_STREAM, USERS_STREAM, TAGS_STREAM, GENOME_STREAM = range(5)

# --layout: the release whose files are written (names, separators, encodings: sparkrec.prepare.releases).
LAYOUTS = {
    "100k": releases.ML_100K,
    "1m": releases.ML_1M,
    "10m": releases.ML_10M,
    "20m": releases.GROUPLENS,
}
DEFAULT_LAYOUT = "20m"
# How each layout writes a star: ML-20M "4.0", ML-10M "4" and "3.5". ML-100K and ML-1M had
# whole stars only: a half star is rounded up, which keeps every rating's like label
# (rating >= 3.5) and keeps 0.5 in their 1..5 range.
STAR_TEXT = {
    "100k": lambda stars: f"{math.ceil(stars)}",
    "1m": lambda stars: f"{math.ceil(stars)}",
    "10m": lambda stars: f"{stars:g}",
    "20m": lambda stars: f"{stars:.1f}",
}
# ML-100K's u.item carries a release date and an IMDb link; these stand in for them.
RELEASE_DATE_FORMAT = "01-Jan-{year}"
IMDB_URL_FORMAT = "http://us.imdb.com/title/tt{imdb:07d}/"


@dataclass(frozen=True)
class Settings:
    """Everything that determines a dataset besides the fixed model constants."""

    users: int
    movies: int
    seed: int
    genome_movies: int
    genome_tags: int


def default_movies(users: int) -> int:
    """Catalogue size for `users`: ML-20M's users-to-movies ratio, floored and capped."""
    return min(FULL_MOVIES, max(MIN_SCALED_MOVIES, round(FULL_MOVIES * users / FULL_USERS)))


def settings(
    users: int,
    movies: int | None = None,
    seed: int = DEFAULT_SEED,
    genome_movies: int | None = None,
    genome_tags: int = DEFAULT_GENOME_TAGS,
) -> Settings:
    """Validated settings, filling in the catalogue and genome sizes that scale with `users`."""
    movies = default_movies(users) if movies is None else movies
    if genome_movies is None:
        genome_movies = round(movies * FULL_GENOME_MOVIES / FULL_MOVIES)
    if users < 1:
        raise ConfigError(f"--users must be at least 1, got {users}")
    if movies < MIN_MOVIES:
        raise ConfigError(f"--movies must be at least {MIN_MOVIES}, got {movies}")
    if seed < 0:
        raise ConfigError(f"--seed must be non-negative, got {seed}")
    if not 0 <= genome_movies <= movies:
        raise ConfigError(f"genome_movies must be between 0 and the movie count, got {genome_movies}")
    if not 0 <= genome_tags <= len(tag_vocabulary()):
        raise ConfigError(f"genome_tags must be between 0 and {len(tag_vocabulary())}, got {genome_tags}")
    return Settings(users, movies, seed, genome_movies, genome_tags)


def stream(seed: int, *key: int) -> np.random.Generator:
    """The random generator of one part of the dataset (a spawn key under the seed)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def tag_vocabulary() -> tuple[str, ...]:
    """Every tag: the generic ones, then each genre's in GENRE_LIST order."""
    return GENERIC_TAGS + tuple(t for g in C.GENRE_LIST for t in GENRE_TAGS.get(g, ()))
