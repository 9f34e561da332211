"""Generated tags and the tag genome: users tag what they rated with their genres' words."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sparkrec.core import columns as C
from sparkrec.synthetic.catalogue import Catalogue
from sparkrec.synthetic.ratings import Ratings
from sparkrec.synthetic.shape import (
    GENERIC_TAG_SHARE,
    GENERIC_TAGS,
    GENOME,
    GENOME_STREAM,
    GENRE_TAGS,
    LAST_TIMESTAMP,
    TAG_PROBABILITY,
    TAGGER_SHARE,
    TAGGING_FROM,
    TAGS_STREAM,
    USERS_PER_CHUNK,
    Settings,
    stream,
    tag_vocabulary,
)


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
    return pd.DataFrame(
        {
            C.USER_ID: chunk.user_ids[tagged],
            C.MOVIE_ID: catalogue.ids[movies],
            C.TAG: np.array(tag_vocabulary(), dtype=object)[choose_tags(rng, catalogue, movies)],
            C.TIMESTAMP: times,
        }
    )


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
    logit = GENOME.base_logit + GENOME.match_logit * match + rng.normal(0.0, GENOME.noise_sd, match.shape)
    return pd.DataFrame(
        {
            C.MOVIE_ID: np.repeat(catalogue.ids[movies], len(tags)),
            C.TAG_ID: np.tile(np.arange(1, len(tags) + 1), movies.size),
            C.RELEVANCE: (1 / (1 + np.exp(-logit))).ravel(),
        }
    )
