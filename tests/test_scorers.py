"""The scorer contract (sparkrec.score.scorers.Scorer), held by every scorer: ours on each path and every baseline's.

Each scorer is built three ways over one small catalogue: with random parameters,
with one movie whose key is NaN for everyone, and with every key equal. Whatever
the scorer, `recommend_batch` must then give each user an exact top-K: never a
watched movie, never a NaN, ties broken by movieId, K rows (fewer when fewer movies
are left unwatched) ranked from 1, and keys of one row per user and one column per
catalogue movie.
"""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest
import scipy.sparse

from sparkrec.core import columns as C
from sparkrec.core.ops import apply
from sparkrec.evaluate.als import Factors
from sparkrec.evaluate.ease import Ease
from sparkrec.evaluate.logistic import Logistic
from sparkrec.evaluate.popular import Popular
from sparkrec.models.towers import Dense, FoldIn, TwoTower
from sparkrec.score.factorize import Factorized
from sparkrec.score.scorers import Block, FastScorer, KerasScorer, TwoTowerScorer, recommend_batch, watched_positions

MOVIE_IDS = np.array([3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610], dtype=np.int64)
MOVIES = len(MOVIE_IDS)
MOVIE_IDX = np.arange(1, MOVIES + 1)  # each catalogue column's movie index; 0 is unknown
NAN_COLUMN = 10  # movieId 377: user 50 has only two other movies left unwatched
K = 5
# userId, user_idx, watched movieIds, liked movieIds: the last user leaves only 3 unwatched (fewer than K).
USERS = pd.DataFrame(
    {
        C.USER_ID: [10, 20, 30, 40, 50],
        C.USER_IDX: [1, 2, 3, 4, 5],
        C.WATCHED: [[3, 55], [], [21, 610, 8], [5, 13, 34, 89, 144], list(MOVIE_IDS[:9])],
        C.LIKED: [[55], [], [8], [5, 13], list(MOVIE_IDS[:4])],
    }
)
USER_COUNT = len(USERS) + 1  # user_idx 0..5
MODES = ("random", "nan", "ties")


def fast(mode: str, rng: np.random.Generator):
    """The paper model's fast path: relu(user + movie) -> Dense(1) -> sigmoid."""
    hidden = 6
    users, movies = rng.normal(size=(USER_COUNT, hidden)), rng.normal(size=(MOVIES, hidden))
    weights, bias = rng.normal(size=(hidden, 1)), rng.normal(size=1)
    if mode == "ties":
        users, movies, weights = np.zeros_like(users), np.zeros_like(movies), np.zeros_like(weights)
    if mode == "nan":
        movies[NAN_COLUMN] = np.nan
    factorized = Factorized(
        users.astype(np.float32),
        movies.astype(np.float32),
        (("relu",), ("dense", weights, bias)),
        (("sigmoid",),),
        np.zeros(USER_COUNT, np.float32),
        np.zeros(MOVIES, np.float32),
    )
    return FastScorer(factorized, MOVIE_IDS)


def two_tower(mode: str, rng: np.random.Generator):
    """The default model: each user's vector from their history, dotted with every movie's, plus its bias."""
    dim, hidden = 4, 8

    def dense(rows: int, columns: int) -> Dense:
        return Dense(rng.normal(size=(rows, columns)).astype(np.float32), rng.normal(size=columns).astype(np.float32))

    movies, bias = rng.normal(size=(MOVIES, dim)).astype(np.float32), rng.normal(size=MOVIES).astype(np.float32)
    if mode == "ties":
        movies, bias = np.zeros_like(movies), np.zeros_like(bias)
    if mode == "nan":
        movies[NAN_COLUMN] = np.nan
    towers = TwoTower(
        rng.normal(size=(MOVIES + 1, dim)).astype(np.float32),
        dense(2 * dim + 2, hidden),
        dense(hidden, dim),
        dense(3 * dim, 4),
        dense(4, 1),
        dense(4, 1),
        movies,
        bias,
    )
    return TwoTowerScorer(towers, MOVIE_IDS, MOVIE_IDX, FoldIn())


def keras_pairs(mode: str, rng: np.random.Generator):
    """The generic path: a Keras model called on every unwatched (user, movie) pair."""
    user = keras.Input(shape=(1,), dtype="int32", name=C.USER_IDX)
    movie = keras.Input(shape=(1,), dtype="int32", name=C.MOVIE_IDX)
    user_rows = keras.layers.Embedding(USER_COUNT, 3, name="users")(user)
    movie_rows = keras.layers.Embedding(MOVIES + 1, 3, name="movies")(movie)
    dot = keras.layers.Dot(axes=-1)([keras.layers.Flatten()(user_rows), keras.layers.Flatten()(movie_rows)])
    model = keras.Model([user, movie], dot)
    users, movies = rng.normal(size=(USER_COUNT, 3)), rng.normal(size=(MOVIES + 1, 3))
    if mode == "ties":
        movies = np.zeros_like(movies)
    if mode == "nan":
        movies[MOVIE_IDX[NAN_COLUMN]] = np.nan
    model.get_layer("users").set_weights([users])
    model.get_layer("movies").set_weights([movies])
    return KerasScorer(model, {C.MOVIE_IDX: MOVIE_IDX.reshape(-1, 1).astype(np.int32)}, MOVIE_IDS, batch_pairs=7)


def popular(mode: str, rng: np.random.Generator):
    likes = np.zeros(MOVIES) if mode == "ties" else rng.integers(0, 50, MOVIES).astype(np.float64)
    if mode == "nan":
        likes[NAN_COLUMN] = np.nan
    return Popular(MOVIE_IDS, None, likes, 0.6)


def factors(mode: str, rng: np.random.Generator):
    """ALS, explicit and implicit: user factors dotted with every movie's."""
    users, items = rng.normal(size=(USER_COUNT, 3)), rng.normal(size=(MOVIES, 3))
    if mode == "ties":
        items = np.zeros_like(items)
    if mode == "nan":
        items[NAN_COLUMN] = np.nan
    return Factors(MOVIE_IDS, users, items)


def ease(mode: str, rng: np.random.Generator):
    """EASE from each user's watched movies; the last catalogue movie has no train rating (no item)."""
    items = MOVIES - 1
    weights = np.zeros((items, items)) if mode == "ties" else rng.normal(size=(items, items))
    if mode == "nan":
        weights[:, NAN_COLUMN] = np.nan
    columns = np.append(np.arange(items), -1)
    history = scipy.sparse.csr_matrix((USER_COUNT, items))
    return Ease(MOVIE_IDS, history, weights.astype(np.float32), columns, dislike_weight=0.5)


def logistic(mode: str, rng: np.random.Generator):
    """Logistic regression: a user term plus a movie term."""
    user_terms, movie_terms = rng.normal(size=USER_COUNT), rng.normal(size=MOVIES)
    if mode == "ties":
        user_terms, movie_terms = np.zeros_like(user_terms), np.zeros_like(movie_terms)
    if mode == "nan":
        movie_terms[NAN_COLUMN] = np.nan
    return Logistic(MOVIE_IDS, None, None, (user_terms, movie_terms), None)


SCORERS = {
    "fast": fast,
    "two_tower": two_tower,
    "keras": keras_pairs,
    "popular": popular,
    "als": factors,
    "ease": ease,
    "logistic": logistic,
}


def all_keys(scorer) -> np.ndarray:
    _, rows, cols, liked = watched_positions(USERS, MOVIE_IDS)
    return scorer.keys(Block(USERS[C.USER_IDX].to_numpy(np.int64), rows, cols, liked))


def expected_lists(scorer) -> dict[int, list[int]]:
    """A full sort of each user's eligible movies by score (the key through the tail), then movieId."""
    scores = apply(scorer.tail, all_keys(scorer).astype(np.float64)).astype(np.float32)
    lists = {}
    for row, user in enumerate(USERS.itertuples()):
        eligible = [
            c for c in range(MOVIES) if MOVIE_IDS[c] not in getattr(user, C.WATCHED) and np.isfinite(scores[row, c])
        ]
        eligible.sort(key=lambda c: (-scores[row, c], MOVIE_IDS[c]))
        lists[getattr(user, C.USER_ID)] = [int(MOVIE_IDS[c]) for c in eligible[:K]]
    return lists


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", list(SCORERS))
def test_every_scorer_gives_each_user_an_exact_top_k(kind, mode):
    scorer = SCORERS[kind](mode, np.random.default_rng(7))
    keys = all_keys(scorer)
    assert keys.shape == (len(USERS), MOVIES) and keys.dtype == np.float32
    got = recommend_batch(scorer, USERS, K, block=2)
    assert list(got.columns) == [C.USER_ID, C.RANK, C.MOVIE_ID, C.SCORE]
    assert [got[c].dtype for c in got.columns] == [np.int32, np.int32, np.int32, np.float32]
    lists = {user: group[C.MOVIE_ID].tolist() for user, group in got.groupby(C.USER_ID)}
    # A movie the scorer cannot score comes out NaN, or -inf where the scorer masks it as it masks watched ones.
    unscorable = np.isnan(keys) | (keys == -np.inf)
    if mode == "nan":
        assert unscorable[0, NAN_COLUMN], "user 10 gets movie 377 scored NaN"
    for row, user in enumerate(USERS.itertuples()):
        user_id, watched = getattr(user, C.USER_ID), set(getattr(user, C.WATCHED))
        scored_nan = set(MOVIE_IDS[unscorable[row]].tolist()) - watched
        chosen = lists.get(user_id, [])
        ranks = got.loc[got[C.USER_ID] == user_id, C.RANK].tolist()
        eligible = set(MOVIE_IDS.tolist()) - watched - scored_nan
        assert len(chosen) == min(K, len(eligible)) and ranks == list(range(1, len(chosen) + 1)), user_id
        assert not watched & set(chosen), f"user {user_id} was recommended a watched movie"
        assert not scored_nan & set(chosen), f"user {user_id} was recommended a movie it could not score"
        if mode == "ties":
            assert chosen == sorted(set(MOVIE_IDS.tolist()) - watched)[:K], "ties go to the lowest movieId"
    assert lists == {user: want for user, want in expected_lists(scorer).items() if want}
