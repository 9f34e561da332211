"""generator.json: every parameter that shaped a generated dataset, and what came out of it."""

from __future__ import annotations

import dataclasses

import numpy as np

from sparkrec.synthetic.ratings import StarCuts, lower_bounds, ratings_cap
from sparkrec.synthetic.shape import (
    ACTIVITY_DAYS,
    FIRST_TIMESTAMP,
    FIRST_YEAR,
    FULL_MOVIES,
    FULL_RATINGS,
    FULL_USERS,
    GENERIC_TAG_SHARE,
    GENOME,
    GENRE_WEIGHTS,
    GENRES_PER_MOVIE_SHARES,
    HALF_STARS_FROM,
    LAST_TIMESTAMP,
    LAST_YEAR,
    MIN_RATINGS_PER_USER,
    MISSING_TMDB_SHARE,
    MODEL,
    NO_GENRES_SHARE,
    POPULARITY_EXPONENT,
    POPULARITY_OFFSET,
    RATING_COUNT_SIGMA,
    RELEASE_AGE_SCALE,
    STAR_COUNTS,
    TAG_PROBABILITY,
    TAGGER_SHARE,
    TAGGING_FROM,
    TITLE_QUIRK_SHARES,
    USERS_PER_CHUNK,
    Settings,
)


def generator_record(
    config: Settings, layout: str, cuts: StarCuts, histogram: dict[str, int], rows: dict[str, int]
) -> dict:
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
        "preference_model": dataclasses.asdict(MODEL),
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
        "genome": dataclasses.asdict(GENOME),
        "stars": {
            "target_histogram": {f"{s:.1f}": n for s, n in STAR_COUNTS.items()},
            "ratings_before_half_stars": int(cuts.counts_before.sum()),
            "score_lower_bounds_before_half_stars": lower_bounds(cuts.cuts_before, cuts.counts_before),
            "score_lower_bounds_with_half_stars": lower_bounds(cuts.cuts_after, cuts.counts_after),
        },
        "rows": rows,
        "rating_histogram": histogram,
    }
