"""Generated users and their ratings: how many, which movies (met by popularity, chosen by taste), when, what stars."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sparkrec.core import columns as C
from sparkrec.synthetic.catalogue import Catalogue, latent_factors
from sparkrec.synthetic.shape import (
    ACTIVITY_DAYS,
    FIRST_TIMESTAMP,
    FULL_RATINGS,
    FULL_USERS,
    HALF_STARS_FROM,
    LAST_TIMESTAMP,
    LAST_YEAR,
    MAX_RATED_SHARE,
    MIN_RATINGS_PER_USER,
    MODEL,
    RATING_COUNT_SIGMA,
    STAR_COUNTS,
    STARS,
    USERS_PER_CHUNK,
    USERS_STREAM,
    WHOLE_STARS,
    Settings,
    stream,
)


class Ratings(NamedTuple):
    """One block of users' ratings before stars are assigned, sorted by (user, movie)."""

    user_ids: np.ndarray
    movies: np.ndarray  # positions in the catalogue
    timestamps: np.ndarray
    scores: np.ndarray


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


def first_distinct(
    rng: np.random.Generator, counts: np.ndarray, draws: np.ndarray, cdf: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
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


def rated_by_draws(
    rng: np.random.Generator, users: np.ndarray, counts: np.ndarray, popularity: np.ndarray
) -> np.ndarray:
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


def rated_by_race(
    rng: np.random.Generator, users: np.ndarray, counts: np.ndarray, popularity: np.ndarray
) -> np.ndarray:
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
    return np.minimum(movies, np.ceil(MODEL.exposure_per_rating * counts)).astype(np.int64)


def popular_movies(
    rng: np.random.Generator, counts: np.ndarray, popularity: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(user, movie) positions sorted by user then movie: `counts[u]` distinct movies for user u,
    a popularity-weighted draw without replacement."""
    # Heavy users would need more draws than the catalogue has movies; they race instead.
    heavy = expected_draws(counts, popularity) > popularity.size
    keys = np.sort(
        np.concatenate(
            [
                rated_by_draws(rng, np.flatnonzero(~heavy), counts, popularity),
                rated_by_race(rng, np.flatnonzero(heavy), counts, popularity),
            ]
        )
    )
    return keys // popularity.size, keys % popularity.size


def chosen(rng: np.random.Generator, users: np.ndarray, appeal: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Positions of `counts[u]` rows of each user u, drawn without replacement with weight
    exp(MODEL.selection_strength * appeal), in their input order.

    Gumbel top-k: the rows with the largest perturbed log-weights. `users` is
    sorted; each user has at least `counts[u]` rows.
    """
    keys = MODEL.selection_strength * appeal - np.log(-np.log(rng.random(appeal.size)))
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
    user_bias = rng.normal(0.0, MODEL.user_bias_sd, n)
    user_factors = latent_factors(rng, n)
    affinity = catalogue.genre_means + rng.normal(0.0, MODEL.genre_affinity_sd, (n, len(C.GENRE_LIST)))
    users, movies = popular_movies(rng, exposures(block, catalogue.popularity.size), catalogue.popularity)
    slots, slot_weights = catalogue.slots[movies], catalogue.slot_weights[movies]
    appeal = np.einsum("ij,ij->i", user_factors[users], catalogue.factors[movies]) + (
        affinity[users[:, None], slots] * slot_weights
    ).sum(axis=1)
    rated = chosen(rng, users, appeal, block)
    users, movies, appeal = users[rated], movies[rated], appeal[rated]
    timestamps = rating_times(rng, users, n)
    scores = (
        user_bias[users]
        + catalogue.bias[movies]
        + appeal
        + MODEL.year_effect_per_decade * (LAST_YEAR - catalogue.years[movies]) / 10
        + rng.normal(0.0, MODEL.noise_sd, users.size)
    )
    return Ratings((users + first_user + 1).astype(np.int32), movies.astype(np.int32), timestamps, scores)


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
