"""The generated catalogue: ids, titles, years, genres, and each movie's hidden popularity, bias and factors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sparkrec.core import columns as C
from sparkrec.synthetic.shape import (
    ARTICLES,
    BLOCKED_WORDS,
    CATALOGUE_STREAM,
    CODAS,
    CONNECTORS,
    FIRST_YEAR,
    FULL_MAX_MOVIE_ID,
    FULL_MOVIES,
    GENRE_WEIGHTS,
    GENRES_PER_MOVIE_SHARES,
    LAST_YEAR,
    MAX_IMDB_ID,
    MAX_TMDB_ID,
    MISSING_TMDB_SHARE,
    MODEL,
    NO_GENRES_SHARE,
    ONSETS,
    POPULARITY_EXPONENT,
    POPULARITY_OFFSET,
    RELEASE_AGE_SCALE,
    TITLE_QUIRK_SHARES,
    VOWELS,
    Settings,
    stream,
)


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
        genre_means=rng.normal(0.0, MODEL.genre_mean_sd, len(C.GENRE_LIST)),
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
    rho = MODEL.popularity_bias_correlation
    return MODEL.movie_bias_sd * (rho * z + np.sqrt(1 - rho**2) * rng.standard_normal(popularity.size))


def latent_factors(rng: np.random.Generator, n: int) -> np.ndarray:
    """Factor vectors scaled so a user-movie dot product has sd MODEL.factor_score_sd."""
    scale = (MODEL.factor_score_sd**2 / MODEL.latent_dim) ** 0.25
    return rng.normal(0.0, scale, (n, MODEL.latent_dim))


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
