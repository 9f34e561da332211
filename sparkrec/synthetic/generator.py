"""Synthetic MovieLens, calibrated to ML-20M's shape, in the file layout of ML-20M or of
ML-10M, ML-1M or ML-100K (`LAYOUTS`, from sparkrec.prepare.releases).

Ratings come from a hidden preference model: user and movie biases, latent
factors, per-user genre affinities and a release-year effect, plus noise. The
latent score is cut into stars at quantile thresholds chosen on the generated
scores themselves, so the star histogram equals ML-20M's (to the rating) at any
scale while the ordering, which is what a model can learn, comes from the
preferences.

Which movies a user rates follows popularity and taste, as in real MovieLens,
where people rate what they chose to watch: a user meets movies by popularity
(twice as many as they will rate) and rates the ones whose personal appeal
(latent factors and genre affinities) draws them, so what a user rated tells a
model something about them, as it does in the real data.

Users are generated in fixed blocks of `USERS_PER_CHUNK`, each from its own
child seed, in two passes: the first draws every block's (user, movie,
timestamp, score), compactly in memory (24 bytes a rating); the second, once
the thresholds are known, turns scores into stars and streams each block to
the ratings file. The same arguments give byte-identical files; every layout
holds the same data, but for what a release cannot say (ML-100K and ML-1M:
whole stars, no tags; ML-100K: no IMAX).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from sparkrec.core import columns as C
from sparkrec.core.config import ConfigError
from sparkrec.core import outputs
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
LATENT_DIM = 8
USER_BIAS_SD = 0.45
MOVIE_BIAS_SD = 0.45
# Popular movies are rated higher in ML-20M; this ties movie bias to popularity.
POPULARITY_BIAS_CORRELATION = 0.5
FACTOR_SCORE_SD = 0.35  # sd of the user-factor . movie-factor product
GENRE_MEAN_SD = 0.15  # how much genres differ for everyone
GENRE_AFFINITY_SD = 0.4  # how much users differ per genre
YEAR_EFFECT_PER_DECADE = 0.05  # older movies that are still rated are the good ones
NOISE_SD = 0.75
# Rated movies: a user meets EXPOSURE_PER_RATING times as many movies as they
# rate, drawn by popularity, and rates a weighted draw of them without
# replacement, weight exp(SELECTION_STRENGTH * appeal), where appeal is the
# personal part of the score (factors and genre affinities, sd about 0.5).
EXPOSURE_PER_RATING = 2.0
SELECTION_STRENGTH = 2.0

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
# Genome relevance is a logistic of this: low unless the tag's genre is the movie's.
GENOME_BASE_LOGIT = -3.0
GENOME_MATCH_LOGIT = 3.5
GENOME_NOISE_SD = 1.0

# Pieces of pronounceable fake words.
ONSETS = ("b", "bl", "br", "c", "ch", "cl", "cr", "d", "dr", "f", "fl", "fr", "g", "gl", "gr", "h",
          "j", "k", "l", "m", "n", "p", "pl", "pr", "r", "s", "sh", "sk", "sl", "st", "t", "th",
          "tr", "v", "w", "z")
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


@dataclass
class Catalogue:
    """The movies and their hidden attributes; arrays are indexed by movie position."""

    ids: np.ndarray
    titles: list[str]
    genres: np.ndarray  # (movies, len(GENRE_LIST)) bool
    slots: np.ndarray  # (movies, 4) genre indices, see genre_slots
    slot_weights: np.ndarray
    years: np.ndarray
    popularity: np.ndarray  # sampling probability of each movie
    bias: np.ndarray
    factors: np.ndarray
    genre_means: np.ndarray
    imdb_ids: np.ndarray
    tmdb_ids: np.ndarray
    tmdb_missing: np.ndarray


class Ratings(NamedTuple):
    """One block of users' ratings before stars are assigned, sorted by (user, movie)."""

    user_ids: np.ndarray
    movies: np.ndarray  # positions in the catalogue
    timestamps: np.ndarray
    scores: np.ndarray


def default_movies(users: int) -> int:
    """Catalogue size for `users`: ML-20M's users-to-movies ratio, floored and capped."""
    return min(FULL_MOVIES, max(MIN_SCALED_MOVIES, round(FULL_MOVIES * users / FULL_USERS)))


def settings(users: int, movies: int | None = None, seed: int = DEFAULT_SEED,
             genome_movies: int | None = None, genome_tags: int = DEFAULT_GENOME_TAGS) -> Settings:
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


# --- the catalogue ---


def make_catalogue(config: Settings) -> Catalogue:
    """Movies with ids, titles, genres, years, popularity and hidden preference attributes."""
    rng = stream(config.seed, CATALOGUE_STREAM)
    n = config.movies
    years = release_years(rng, n)
    genres = movie_genres(rng, n)
    popularity = popularity_weights(rng, n)
    slots, slot_weights = genre_slots(genres)
    return Catalogue(
        ids=movie_ids(rng, n),
        titles=movie_titles(rng, years),
        genres=genres,
        slots=slots,
        slot_weights=slot_weights,
        years=years,
        popularity=popularity,
        bias=movie_bias(rng, popularity),
        factors=latent_factors(rng, n),
        genre_means=rng.normal(0.0, GENRE_MEAN_SD, len(C.GENRE_LIST)),
        imdb_ids=rng.choice(MAX_IMDB_ID, n, replace=False) + 1,
        tmdb_ids=rng.choice(MAX_TMDB_ID, n, replace=False) + 1,
        tmdb_missing=rng.random(n) < MISSING_TMDB_SHARE,
    )


def movie_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """Sorted ids with gaps, spread like ML-20M's (1..131,262 at full scale)."""
    top = max(n, round(n * FULL_MAX_MOVIE_ID / FULL_MOVIES))
    return np.sort(rng.choice(top, n, replace=False) + 1)


def release_years(rng: np.random.Generator, n: int) -> np.ndarray:
    """Years in FIRST_YEAR..LAST_YEAR, exponentially more likely the more recent."""
    span = LAST_YEAR - FIRST_YEAR + 1
    # Inverse CDF of an exponential truncated to the span, so no year piles up at the edge.
    age = -RELEASE_AGE_SCALE * np.log1p(-rng.random(n) * -np.expm1(-span / RELEASE_AGE_SCALE))
    return LAST_YEAR - np.minimum(age.astype(np.int64), span - 1)


def movie_genres(rng: np.random.Generator, n: int) -> np.ndarray:
    """Multi-hot genres over GENRE_LIST: 1-4 drawn by ML-20M frequency, or none listed."""
    named = list(GENRE_WEIGHTS)
    weights = np.array(list(GENRE_WEIGHTS.values()), dtype=float)
    # Gumbel top-k: the k largest perturbed log-weights are a weighted draw without replacement.
    keys = np.log(weights) - np.log(-np.log(rng.random((n, weights.size))))
    rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
    count = rng.choice(len(GENRES_PER_MOVIE_SHARES), n, p=GENRES_PER_MOVIE_SHARES) + 1
    none = rng.random(n) < NO_GENRES_SHARE
    genres = np.zeros((n, len(C.GENRE_LIST)), dtype=bool)
    genres[:, [C.GENRE_LIST.index(g) for g in named]] = (rank < count[:, None]) & ~none[:, None]
    genres[:, C.GENRE_LIST.index(C.NO_GENRES)] = none
    return genres


def popularity_weights(rng: np.random.Generator, n: int) -> np.ndarray:
    """Sampling probabilities following a head-flattened Zipf law over a random popularity order."""
    offset = POPULARITY_OFFSET * n / FULL_MOVIES
    rank = rng.permutation(n) + 1
    weights = (rank + offset) ** -POPULARITY_EXPONENT
    return weights / weights.sum()


def movie_bias(rng: np.random.Generator, popularity: np.ndarray) -> np.ndarray:
    """Per-movie score offsets, partly following popularity."""
    log_popularity = np.log(popularity)
    z = (log_popularity - log_popularity.mean()) / log_popularity.std()
    rho = POPULARITY_BIAS_CORRELATION
    return MOVIE_BIAS_SD * (rho * z + np.sqrt(1 - rho**2) * rng.standard_normal(popularity.size))


def latent_factors(rng: np.random.Generator, n: int) -> np.ndarray:
    """Factor vectors scaled so a user-movie dot product has sd FACTOR_SCORE_SD."""
    scale = (FACTOR_SCORE_SD**2 / LATENT_DIM) ** 0.25
    return rng.normal(0.0, scale, (n, LATENT_DIM))


def candidate_words(rng: np.random.Generator, n: int) -> list[str]:
    """Capitalised pronounceable nonsense words of one or two syllables."""

    def syllables() -> np.ndarray:
        parts = [np.array(p)[rng.integers(len(p), size=n)] for p in (ONSETS, VOWELS, CODAS)]
        return np.char.add(np.char.add(parts[0], parts[1]), parts[2])

    first, second = syllables(), syllables()
    two = rng.random(n) < 0.5
    return [(a + b if t else a).capitalize() for a, b, t in zip(first, second, two)]


def fake_words(rng: np.random.Generator, n: int) -> list[str]:
    """`n` nonsense words, skipping any that happen to spell something offensive."""
    words: list[str] = []
    while len(words) < n:
        words += [w for w in candidate_words(rng, n) if not BLOCKED_WORDS.search(w)]
    return words[:n]


def fake_names(rng: np.random.Generator, n: int) -> list[str]:
    """Names of 1-3 fake words, sometimes joined by a connector like 'of the'."""
    words = fake_words(rng, 3 * n)
    lengths = rng.choice(3, n, p=(0.35, 0.4, 0.25)) + 1
    connectors = rng.integers(len(CONNECTORS), size=n)
    connect = rng.random(n) < 0.2
    names = []
    for i, (length, c, joined) in enumerate(zip(lengths, connectors, connect)):
        parts = words[3 * i : 3 * i + length]
        if joined and length > 1:
            parts = [*parts[:-1], CONNECTORS[c], parts[-1]]
        names.append(" ".join(parts))
    return names


def movie_titles(rng: np.random.Generator, years: np.ndarray) -> list[str]:
    """MovieLens-style titles: 'Name (1995)' with the quirks of TITLE_QUIRK_SHARES."""
    n = years.size
    names, others = fake_names(rng, n), fake_names(rng, n)
    quirks = ("plain", *TITLE_QUIRK_SHARES)
    shares = (1 - sum(TITLE_QUIRK_SHARES.values()), *TITLE_QUIRK_SHARES.values())
    chosen = rng.choice(len(quirks), n, p=shares)
    articles = rng.integers(len(ARTICLES), size=n)
    range_ends = years + rng.integers(1, 4, size=n)
    titles = []
    for i, quirk in enumerate(quirks[c] for c in chosen):
        name, year = names[i], f"({years[i]})"
        if quirk == "article":
            name = f"{name}, {ARTICLES[articles[i]]}"
        elif quirk == "alias":
            name = f"{name} ({others[i]})"
        elif quirk == "quoted":
            name = f'"{name}" {others[i].split()[0]}'
        elif quirk == "year_range":
            # A series still running at the end of the data has an open range, "(2014-)".
            end = range_ends[i] if range_ends[i] <= LAST_YEAR else ""
            year = f"({years[i]}-{end})"
        title = name if quirk == "no_year" else f"{name} {year}"
        titles.append(title + " " if quirk == "trailing_space" else title)
    return titles


def genre_strings(genres: np.ndarray, names: dict[str, str]) -> list[str]:
    """Pipe-joined genre names (`names`: ours -> the layout's) in GENRE_LIST (alphabetical) order,
    as MovieLens lists them."""
    listed = np.array([names[genre] for genre in C.GENRE_LIST])
    return ["|".join(listed[row]) for row in genres]


def genre_slots(genres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each movie's genre indices padded to 4 columns, with weights averaging over its genres."""
    order = np.argsort(~genres, axis=1, kind="stable")[:, :4]
    listed = np.take_along_axis(genres, order, axis=1)
    weights = listed / listed.sum(axis=1, keepdims=True)
    return order, weights


# --- users and their ratings ---


def ratings_cap(movies: int) -> int:
    """The bound a user's rating count approaches in a catalogue of `movies`."""
    return max(MIN_RATINGS_PER_USER + 2, round(MAX_RATED_SHARE * movies))


def saturating_fill(weights: np.ndarray, total: int, cap: int) -> np.ndarray:
    """Integers growing with `weights`, below `cap`, summing exactly to `total` (< len(weights) * cap).

    Each value is cap * (1 - exp(-scale * weight / cap)): proportional to its
    weight while small, bending smoothly under the cap instead of piling up at
    it; the scale is found by bisection.
    """

    def values(scale: float) -> np.ndarray:
        return cap * -np.expm1(-scale * weights / cap)

    low, high = 0.0, 50.0 * cap / weights.min()
    for _ in range(200):
        middle = (low + high) / 2
        if values(middle).sum() < total:
            low = middle
        else:
            high = middle
    return round_to_total(values(high), total)


def round_to_total(shares: np.ndarray, total: int) -> np.ndarray:
    """Round non-negative `shares` (summing to about `total`) to integers summing to `total` exactly.

    Each share is floored and the largest remainders get the units lost; a
    share that is already whole never moves, which keeps capped values capped.
    """
    counts = np.floor(shares).astype(np.int64)
    counts[np.argsort(counts - shares, kind="stable")[: total - int(counts.sum())]] += 1
    return counts


def rating_counts(rng: np.random.Generator, users: int, movies: int) -> np.ndarray:
    """Ratings per user: 20 plus a lognormal excess, averaging ML-20M's ~144.4 a user exactly.

    A catalogue too small for that mean fills half the room between the minimum and the cap.
    """
    room = ratings_cap(movies) - MIN_RATINGS_PER_USER
    total = min(round(users * FULL_RATINGS / FULL_USERS) - users * MIN_RATINGS_PER_USER, users * room // 2)
    excess = rng.lognormal(0.0, RATING_COUNT_SIGMA, users)
    return MIN_RATINGS_PER_USER + saturating_fill(excess, total, room)


def first_distinct(rng: np.random.Generator, counts: np.ndarray, draws: np.ndarray,
                   cdf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each user's first `count` distinct movies in `draws` popularity draws.

    Returns the (user * movies + movie) keys found, and a mask of users whose
    draws held fewer than `count` distinct movies (their keys are left out).
    """
    n_movies = cdf.size
    owner = np.repeat(np.arange(counts.size), draws)
    movie = np.minimum(np.searchsorted(cdf, rng.random(owner.size), side="right"), n_movies - 1)
    pair = owner * n_movies + movie
    # One plain sort of (pair, draw position) packed into an int64 puts each
    # pair's first draw at the head of its run: much faster than a stable sort.
    bits = int(owner.size).bit_length()
    packed = np.sort((pair << bits) | np.arange(owner.size))
    run_heads = np.flatnonzero(np.diff(packed >> bits, prepend=-1))
    first = np.zeros(owner.size, dtype=bool)
    first[packed[run_heads] & ((1 << bits) - 1)] = True
    # Distinct movies seen so far, counted in draw order and restarted per user.
    seen = np.concatenate([[0], np.cumsum(first)])
    block_start = np.cumsum(draws) - draws
    rank = seen[1:] - seen[block_start][owner]
    short = seen[block_start + draws] - seen[block_start] < counts
    keep = first & (rank <= counts[owner]) & ~short[owner]
    return pair[keep], short


def expected_draws(counts: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """How many popularity draws are expected to hold `counts` distinct movies."""
    grid = np.geomspace(1.0, 1e3 * popularity.size, 160)
    distinct = np.array([-np.expm1(-k * popularity).sum() for k in grid])
    return np.interp(counts, distinct, grid)


def rated_by_draws(rng: np.random.Generator, users: np.ndarray, counts: np.ndarray,
                   popularity: np.ndarray) -> np.ndarray:
    """(user * movies + movie) keys: each user's first `count` distinct values of i.i.d. popularity draws.

    That is exactly a weighted draw without replacement. Draw sequences are
    sized for the expected need plus a margin; the few users whose sequence
    fell short get a fresh, longer one.
    """
    cdf = np.cumsum(popularity)
    draws = (1.1 * expected_draws(counts[users], popularity)).astype(np.int64) + 10
    found = [np.arange(0)]
    while users.size:
        keys, short = first_distinct(rng, counts[users], draws, cdf)
        found.append(users[keys // cdf.size] * cdf.size + keys % cdf.size)
        users, draws = users[short], 2 * draws[short]
    return np.concatenate(found)


def rated_by_race(rng: np.random.Generator, users: np.ndarray, counts: np.ndarray,
                  popularity: np.ndarray) -> np.ndarray:
    """(user * movies + movie) keys: the `count` winners of an exponential race over the catalogue.

    Movie j finishes at Exp(1) / popularity[j]; the first `count` finishers
    are the same weighted draw without replacement as `rated_by_draws`, at one
    random number per catalogue movie, which is cheaper for heavy users.
    """
    found = [np.arange(0)]
    for user in users:
        finish = rng.exponential(size=popularity.size) / popularity
        found.append(user * popularity.size + np.argpartition(finish, counts[user] - 1)[: counts[user]])
    return np.concatenate(found)


def exposures(counts: np.ndarray, movies: int) -> np.ndarray:
    """How many movies each user meets, to rate `counts` of them (within the catalogue)."""
    return np.minimum(movies, np.ceil(EXPOSURE_PER_RATING * counts)).astype(np.int64)


def popular_movies(rng: np.random.Generator, counts: np.ndarray,
                   popularity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(user, movie) positions sorted by user then movie: `counts[u]` distinct movies for user u,
    a popularity-weighted draw without replacement."""
    # Heavy users would need more draws than the catalogue has movies; they race instead.
    heavy = expected_draws(counts, popularity) > popularity.size
    keys = np.sort(np.concatenate([
        rated_by_draws(rng, np.flatnonzero(~heavy), counts, popularity),
        rated_by_race(rng, np.flatnonzero(heavy), counts, popularity),
    ]))
    return keys // popularity.size, keys % popularity.size


def chosen(rng: np.random.Generator, users: np.ndarray, appeal: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Positions of `counts[u]` rows of each user u, drawn without replacement with weight
    exp(SELECTION_STRENGTH * appeal), in their input order.

    Gumbel top-k: the rows with the largest perturbed log-weights. `users` is
    sorted; each user has at least `counts[u]` rows.
    """
    keys = SELECTION_STRENGTH * appeal - np.log(-np.log(rng.random(appeal.size)))
    order = np.lexsort((-keys, users))
    ranked_users = users[order]
    rank = np.arange(order.size) - np.searchsorted(ranked_users, ranked_users, side="left")
    return np.sort(order[rank < counts[ranked_users]])


def rating_times(rng: np.random.Generator, users: np.ndarray, n_users: int) -> np.ndarray:
    """Unix seconds: each user rates uniformly within an activity period starting at a random date."""
    start = rng.integers(FIRST_TIMESTAMP, LAST_TIMESTAMP + 1, n_users)
    span = rng.exponential(ACTIVITY_DAYS * 86_400, n_users).astype(np.int64)
    length = np.minimum(start + span, LAST_TIMESTAMP) - start + 1
    return start[users] + (rng.random(users.size) * length[users]).astype(np.int64)


def chunk_ratings(config: Settings, catalogue: Catalogue, counts: np.ndarray, chunk: int) -> Ratings:
    """The ratings of user block `chunk` (users chunk*USERS_PER_CHUNK + 1 onwards) with latent scores."""
    rng = stream(config.seed, USERS_STREAM, chunk)
    first_user = chunk * USERS_PER_CHUNK
    block = counts[first_user : first_user + USERS_PER_CHUNK]
    n = block.size
    user_bias = rng.normal(0.0, USER_BIAS_SD, n)
    user_factors = latent_factors(rng, n)
    affinity = catalogue.genre_means + rng.normal(0.0, GENRE_AFFINITY_SD, (n, len(C.GENRE_LIST)))
    users, movies = popular_movies(rng, exposures(block, catalogue.popularity.size), catalogue.popularity)
    slots, slot_weights = catalogue.slots[movies], catalogue.slot_weights[movies]
    appeal = (
        np.einsum("ij,ij->i", user_factors[users], catalogue.factors[movies])
        + (affinity[users[:, None], slots] * slot_weights).sum(axis=1)
    )
    rated = chosen(rng, users, appeal, block)
    users, movies, appeal = users[rated], movies[rated], appeal[rated]
    timestamps = rating_times(rng, users, n)
    scores = (
        user_bias[users]
        + catalogue.bias[movies]
        + appeal
        + YEAR_EFFECT_PER_DECADE * (LAST_YEAR - catalogue.years[movies]) / 10
        + rng.normal(0.0, NOISE_SD, users.size)
    )
    return Ratings((users + first_user + 1).astype(np.int32), movies.astype(np.int32), timestamps, scores)


# --- stars ---


def apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Integers proportional to `weights` summing to `total` (largest remainders)."""
    if total == 0:
        return np.zeros(weights.size, dtype=np.int64)
    return round_to_total(total * weights / weights.sum(), total)


def star_counts(n_before: int, n_after: int) -> tuple[np.ndarray, np.ndarray]:
    """Ratings per star level before and after half stars existed, summing to ML-20M's histogram.

    Before 2003-02-18 only whole stars exist, in ML-20M's whole-star
    proportions; the half-star era takes the rest, which it can as long as
    fewer than ~74% of ratings are from before.
    """
    target = apportion(n_before + n_after, np.array(list(STAR_COUNTS.values()), dtype=float))
    whole = np.array([s in WHOLE_STARS for s in STARS])
    before = np.zeros(len(STARS), dtype=np.int64)
    before[whole] = apportion(n_before, target[whole].astype(float))
    after = apportion(n_after, np.maximum(target - before, 0).astype(float))
    return before, after


class StarCuts(NamedTuple):
    """Ratings per star level and the score thresholds between levels, per era."""

    counts_before: np.ndarray
    counts_after: np.ndarray
    cuts_before: np.ndarray
    cuts_after: np.ndarray


def star_cuts(chunks: list[Ratings]) -> StarCuts:
    """Thresholds that give every era exactly its star counts (see `star_counts`)."""
    before = np.concatenate([c.scores[c.timestamps < HALF_STARS_FROM] for c in chunks])
    after = np.concatenate([c.scores[c.timestamps >= HALF_STARS_FROM] for c in chunks])
    counts_before, counts_after = star_counts(before.size, after.size)
    return StarCuts(counts_before, counts_after, level_cuts(before, counts_before), level_cuts(after, counts_after))


def level_cuts(scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Threshold k is the lowest score above level k, so level = number of thresholds <= score.

    A level that is empty from the bottom or top gets a -inf or +inf threshold.
    """
    cumulative = np.cumsum(counts)[:-1]
    cuts = np.where(cumulative == 0, -np.inf, np.inf)
    inside = (cumulative > 0) & (cumulative < scores.size)
    if inside.any():
        cuts[inside] = np.partition(scores, cumulative[inside])[cumulative[inside]]
    return cuts


def star_levels(chunk: Ratings, cuts: StarCuts) -> np.ndarray:
    """Index into STARS of every rating of `chunk`."""
    return np.where(
        chunk.timestamps < HALF_STARS_FROM,
        np.searchsorted(cuts.cuts_before, chunk.scores, side="right"),
        np.searchsorted(cuts.cuts_after, chunk.scores, side="right"),
    ).astype(np.int8)


def lower_bounds(cuts: np.ndarray, counts: np.ndarray) -> dict[str, float]:
    """The lowest latent score of each star level above the bottom one, for generator.json."""
    return {
        f"{STARS[k + 1]:.1f}": round(float(cuts[k]), 6)
        for k in range(cuts.size)
        if counts[k + 1] > 0 and np.isfinite(cuts[k])
    }


# --- tags and the tag genome ---


def tag_vocabulary() -> tuple[str, ...]:
    """Every tag: the generic ones, then each genre's in GENRE_LIST order."""
    return GENERIC_TAGS + tuple(t for g in C.GENRE_LIST for t in GENRE_TAGS.get(g, ()))


def genre_tag_ranges() -> tuple[np.ndarray, np.ndarray]:
    """Per GENRE_LIST entry, where its tags start in the vocabulary and how many there are."""
    lengths = np.array([len(GENRE_TAGS.get(g, ())) for g in C.GENRE_LIST])
    starts = len(GENERIC_TAGS) + np.cumsum(lengths) - lengths
    return starts, lengths


def choose_tags(rng: np.random.Generator, catalogue: Catalogue, movies: np.ndarray) -> np.ndarray:
    """Vocabulary indices of one tag for each of `movies`, usually from one of the movie's genres."""
    n = movies.size
    n_listed = catalogue.genres[movies][:, [C.GENRE_LIST.index(g) for g in GENRE_TAGS]].sum(axis=1)
    genre = catalogue.slots[movies, (rng.random(n) * n_listed).astype(np.int64)]
    starts, lengths = genre_tag_ranges()
    generic = (n_listed == 0) | (rng.random(n) < GENERIC_TAG_SHARE)
    offset = rng.random(n)
    return np.where(
        generic,
        (offset * len(GENERIC_TAGS)).astype(np.int64),
        starts[genre] + (offset * lengths[genre]).astype(np.int64),
    )


def chunk_tags(config: Settings, catalogue: Catalogue, chunk: Ratings, index: int) -> pd.DataFrame:
    """Tags of user block `index`: taggers tag a share of their rated movies, some time later."""
    rng = stream(config.seed, TAGS_STREAM, index)
    local_user = chunk.user_ids - index * USERS_PER_CHUNK - 1
    tagger = rng.random(USERS_PER_CHUNK) < TAGGER_SHARE
    tagged = tagger[local_user] & (rng.random(local_user.size) < TAG_PROBABILITY)
    movies = chunk.movies[tagged]
    # Tags are applied after rating, and only once MovieLens had tagging.
    since = np.maximum(chunk.timestamps[tagged], TAGGING_FROM)
    times = since + (rng.random(since.size) * (LAST_TIMESTAMP - since + 1)).astype(np.int64)
    return pd.DataFrame({
        C.USER_ID: chunk.user_ids[tagged],
        C.MOVIE_ID: catalogue.ids[movies],
        C.TAG: np.array(tag_vocabulary(), dtype=object)[choose_tags(rng, catalogue, movies)],
        C.TIMESTAMP: times,
    })


def genome_tags(count: int) -> list[str]:
    """`count` tags spread evenly over the alphabetical vocabulary; tagId i is entry i-1."""
    vocabulary = sorted(tag_vocabulary())
    return [vocabulary[i] for i in np.linspace(0, len(vocabulary) - 1, count).round().astype(int)]


def genome_scores(config: Settings, catalogue: Catalogue, tags: list[str]) -> pd.DataFrame:
    """Relevance of each genome tag to each of the most popular movies, high when genres match."""
    rng = stream(config.seed, GENOME_STREAM)
    movies = np.sort(np.argsort(-catalogue.popularity, kind="stable")[: config.genome_movies])
    genre_of = {t: C.GENRE_LIST.index(g) for g, names in GENRE_TAGS.items() for t in names}
    tag_genre = np.array([genre_of.get(t, -1) for t in tags], dtype=np.int64)
    match = (tag_genre >= 0) & catalogue.genres[movies][:, np.maximum(tag_genre, 0)]
    logit = GENOME_BASE_LOGIT + GENOME_MATCH_LOGIT * match + rng.normal(0.0, GENOME_NOISE_SD, match.shape)
    return pd.DataFrame({
        C.MOVIE_ID: np.repeat(catalogue.ids[movies], len(tags)),
        C.TAG_ID: np.tile(np.arange(1, len(tags) + 1), movies.size),
        C.RELEVANCE: (1 / (1 + np.exp(-logit))).ravel(),
    })


# --- files ---


def write_frame(frame: pd.DataFrame, path: Path, file: releases.FileFormat, encoding: str, **options) -> int:
    """Write a small table in `file`'s format, its declared columns in order; return its rows.

    GroupLens CSV has a header and quotes only where needed; the .dat and u.* files
    have neither, so a field holding the separator cannot be written.
    """
    if file.schema is not None:
        frame = frame[file.schema.fieldNames()]
    if file.quote:
        frame.to_csv(path, index=False, lineterminator="\n", encoding=encoding, **options)
        return len(frame)
    text = frame.astype(str)
    for name in text.columns:
        if text[name].str.contains(file.sep, regex=False).any():
            raise ValueError(f"{path.name}: a {name} value holds the separator {file.sep!r}")
    path.write_bytes("".join(file.sep.join(row) + "\n" for row in text.itertuples(index=False)).encode(encoding))
    return len(frame)


def write_ratings(path: Path, layout: str, catalogue: Catalogue, chunks: list[Ratings],
                  cuts: StarCuts) -> dict[str, int]:
    """Stream every block to the layout's ratings file; return the number of ratings per star written."""
    file = LAYOUTS[layout].files["ratings"]
    stars = [STAR_TEXT[layout](s) for s in STARS]
    labels = pa.array(stars)
    histogram = np.zeros(len(STARS), dtype=np.int64)
    # Arrow's CSV writer is ~10x faster than pandas; "none" quoting is safe for numbers, and so
    # is putting the layout's separator in place of the comma afterwards.
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with open(path, "wb") as sink:
        if file.header:
            sink.write((",".join(file.schema.fieldNames()) + "\n").encode())
        for chunk in chunks:
            levels = star_levels(chunk, cuts)
            histogram += np.bincount(levels, minlength=len(STARS))
            table = pa.table({
                C.USER_ID: chunk.user_ids,
                C.MOVIE_ID: catalogue.ids[chunk.movies].astype(np.int32),
                C.RATING: labels.take(pa.array(levels)),
                C.TIMESTAMP: chunk.timestamps,
            })
            block = io.BytesIO()
            pacsv.write_csv(table, block, options)
            sink.write(block.getvalue().replace(b",", file.sep.encode()))
    written: dict[str, int] = {}
    for text, count in zip(stars, histogram):
        key = f"{float(text):.1f}"
        written[key] = written.get(key, 0) + int(count)
    return written


def movies_frame(catalogue: Catalogue, layout: str) -> pd.DataFrame:
    """The movies file: id, title and the pipe-joined genres in the layout's genre names, or,
    for ML-100K's u.item, a 0/1 flag per u.genre genre (IMAX has none there)."""
    if C.RELEASE_DATE not in LAYOUTS[layout].files["movies"].schema.fieldNames():
        return pd.DataFrame({
            C.MOVIE_ID: catalogue.ids,
            C.TITLE: catalogue.titles,
            C.GENRES: genre_strings(catalogue.genres, releases.genre_names(LAYOUTS[layout].layout)),
        })
    flags = {
        flag: catalogue.genres[:, C.GENRE_LIST.index(releases.GENRE_OF[name])].astype(np.int8)
        for flag, name in zip(C.ML100K_FLAG_COLUMNS, releases.ML100K_GENRES)
    }
    return pd.DataFrame({
        C.MOVIE_ID: catalogue.ids,
        C.TITLE: catalogue.titles,
        C.RELEASE_DATE: [RELEASE_DATE_FORMAT.format(year=year) for year in catalogue.years],
        C.VIDEO_RELEASE_DATE: "",
        C.IMDB_URL: [IMDB_URL_FORMAT.format(imdb=imdb) for imdb in catalogue.imdb_ids],
        **flags,
    })


def genre_list_frame() -> pd.DataFrame:
    """ML-100K's u.genre: each u.item flag's genre and position."""
    return pd.DataFrame({"genre": releases.ML100K_GENRES, "index": range(len(releases.ML100K_GENRES))})


def links_frame(catalogue: Catalogue) -> pd.DataFrame:
    """links.csv: imdbId zero-padded to 7 digits, tmdbId missing for a small share as in ML-20M."""
    tmdb = pd.array(catalogue.tmdb_ids, dtype="Int64")
    tmdb[catalogue.tmdb_missing] = pd.NA
    return pd.DataFrame({
        C.MOVIE_ID: catalogue.ids,
        C.IMDB_ID: [f"{i:07d}" for i in catalogue.imdb_ids],
        C.TMDB_ID: tmdb,
    })


def write_dataset(directory: Path, config: Settings, layout: str = DEFAULT_LAYOUT) -> dict:
    """Write every file of the dataset in `layout` into `directory`; return the generator.json record."""
    release = LAYOUTS[layout]
    catalogue = make_catalogue(config)
    counts = rating_counts(stream(config.seed, COUNTS_STREAM), config.users, config.movies)
    n_chunks = -(-config.users // USERS_PER_CHUNK)
    chunks = [chunk_ratings(config, catalogue, counts, k) for k in range(n_chunks)]
    cuts = star_cuts(chunks)
    ratings = release.files["ratings"]
    histogram = write_ratings(directory / ratings.name, layout, catalogue, chunks, cuts)
    names = genome_tags(config.genome_tags)
    # Each table is built only for a layout that has its file; every one draws from its own stream.
    tables = {
        "movies": lambda: movies_frame(catalogue, layout),
        "tags": lambda: pd.concat([chunk_tags(config, catalogue, chunk, k) for k, chunk in enumerate(chunks)]),
        "links": lambda: links_frame(catalogue),
        "genome_tags": lambda: pd.DataFrame({C.TAG_ID: np.arange(1, len(names) + 1), C.TAG: names}),
        "genome_scores": lambda: genome_scores(config, catalogue, names),
        "genre_list": genre_list_frame,
    }
    options = {"genome_scores": {"float_format": "%.5f"}}
    rows = {ratings.name: sum(histogram.values())}
    for table, build in tables.items():
        if table in release.files:
            file = release.files[table]
            rows[file.name] = write_frame(build(), directory / file.name, file, release.encoding,
                                          **options.get(table, {}))
    record = generator_record(config, layout, cuts, histogram, rows)
    (directory / "generator.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def generator_record(config: Settings, layout: str, cuts: StarCuts, histogram: dict[str, int],
                     rows: dict[str, int]) -> dict:
    """Every parameter that shaped the dataset, and what came out, for generator.json."""
    return {
        "generator": "sparkrec.synthetic",
        "layout": f"GroupLens ml-{layout}",
        "seed": config.seed,
        "users": config.users,
        "movies": config.movies,
        "genome_movies": config.genome_movies,
        "genome_tags": config.genome_tags,
        "users_per_chunk": USERS_PER_CHUNK,
        "numpy_version": np.__version__,
        "preference_model": {
            "latent_dim": LATENT_DIM,
            "user_bias_sd": USER_BIAS_SD,
            "movie_bias_sd": MOVIE_BIAS_SD,
            "popularity_bias_correlation": POPULARITY_BIAS_CORRELATION,
            "factor_score_sd": FACTOR_SCORE_SD,
            "genre_mean_sd": GENRE_MEAN_SD,
            "genre_affinity_sd": GENRE_AFFINITY_SD,
            "year_effect_per_decade": YEAR_EFFECT_PER_DECADE,
            "noise_sd": NOISE_SD,
            "exposure_per_rating": EXPOSURE_PER_RATING,
            "selection_strength": SELECTION_STRENGTH,
        },
        "catalogue": {
            "popularity_offset": POPULARITY_OFFSET * config.movies / FULL_MOVIES,
            "popularity_exponent": POPULARITY_EXPONENT,
            "release_years": [FIRST_YEAR, LAST_YEAR],
            "release_age_scale": RELEASE_AGE_SCALE,
            "genre_weights": GENRE_WEIGHTS,
            "genres_per_movie_shares": GENRES_PER_MOVIE_SHARES,
            "no_genres_share": NO_GENRES_SHARE,
            "title_quirk_shares": TITLE_QUIRK_SHARES,
            "missing_tmdb_share": MISSING_TMDB_SHARE,
        },
        "activity": {
            "min_ratings_per_user": MIN_RATINGS_PER_USER,
            "ratings_cap": ratings_cap(config.movies),
            "mean_ratings_per_user_target": FULL_RATINGS / FULL_USERS,
            "rating_count_sigma": RATING_COUNT_SIGMA,
            "activity_days": ACTIVITY_DAYS,
            "timestamps": [FIRST_TIMESTAMP, LAST_TIMESTAMP],
            "half_stars_from": HALF_STARS_FROM,
            "tagging_from": TAGGING_FROM,
            "tagger_share": TAGGER_SHARE,
            "tag_probability": TAG_PROBABILITY,
            "generic_tag_share": GENERIC_TAG_SHARE,
        },
        "genome": {
            "base_logit": GENOME_BASE_LOGIT,
            "match_logit": GENOME_MATCH_LOGIT,
            "noise_sd": GENOME_NOISE_SD,
        },
        "stars": {
            "target_histogram": {f"{s:.1f}": n for s, n in STAR_COUNTS.items()},
            "ratings_before_half_stars": int(cuts.counts_before.sum()),
            "score_lower_bounds_before_half_stars": lower_bounds(cuts.cuts_before, cuts.counts_before),
            "score_lower_bounds_with_half_stars": lower_bounds(cuts.cuts_after, cuts.counts_after),
        },
        "rows": rows,
        "rating_histogram": histogram,
    }


def table_rows(record: dict, layout: str) -> dict[str, int]:
    """generator.json's row counts by table (ratings, movies, ...) rather than file name."""
    return {table: record["rows"][file.name] for table, file in LAYOUTS[layout].files.items()
            if file.name in record["rows"]}


def generate(output: str | os.PathLike, config: Settings, force: bool = False,
             layout: str = DEFAULT_LAYOUT) -> dict:
    """Write the dataset in `layout` to `output` through the jobs' staged commit (`sparkrec.core.outputs`);
    return generator.json.

    `output` may be missing, empty or an earlier generated dataset (anything
    else only with `force`); it is replaced once the new dataset is complete,
    and a failed run leaves nothing behind.
    """
    with outputs.staged_output(None, os.fspath(output), "generate", force=force, keep_failed=False) as staging:
        return write_dataset(Path(staging), config, layout)
