"""The two-tower model: its training examples, its numpy form against Keras, its scorer, and its jobs.

Unit tests use small literal histories and randomly initialised towers; the
job tests train a tiny two-tower model on prepare's ml-latest-small output.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import scipy.sparse
import tensorflow as tf

from sparkrec.core import columns as C
from sparkrec.core import metrics
from sparkrec.core.config import ConfigError
from sparkrec.models import pairwise as M
from sparkrec.models import saved, twotower
from sparkrec.models import towers as retrieval
from sparkrec.score.config import ScoreConfig
from sparkrec.score.scorers import Block, TwoTowerScorer, recommend_batch, top_k_lists, watched_positions
from sparkrec.train import callbacks, fitting, towertrain
from sparkrec.train.candidates import Candidates, Sampler
from sparkrec.train.config import TrainConfig
from sparkrec.train.history import Histories, example_count, fold_counts, fold_examples, user_history

from helpers import load_job

pytestmark = pytest.mark.filterwarnings("ignore:Please use make_reader:UserWarning")

TINY_TOWERS = [
    "--set",
    "model=twotower",
    "--set",
    "epochs=2",
    "--set",
    "batch_size=256",
    "--set",
    "tower_dim=16",
    "--set",
    "tower_hidden=32",
    "--set",
    "head_hidden=16",
    "--set",
    "validation_users=200",
    "--set",
    "keras_verbose=0",
    "--set",
    "ema_momentum=0",
    "--set",
    "learning_rate=0.003",
]
SIZES = {"user": 9, "movie": 40, "genre": 5, "year": 6, "tag": 7}


def literal_histories() -> Histories:
    """Eight users with 1 to 70 ratings each (user 0, the unknown index, has none)."""
    rng = np.random.default_rng(0)
    users, movies = [], []
    for user, count in enumerate([0, 1, 2, 5, 9, 30, 39, 12, 3]):
        users += [user] * count
        movies += sorted(rng.choice(np.arange(1, 40), size=count, replace=False).tolist())
    likes = rng.integers(0, 2, len(users))
    return Histories.from_rows(np.array(users), np.array(movies), likes, likes * 3.0 + 1.5, 9)


# --- examples ------------------------------------------------------------------


def test_every_rating_is_a_target_once_per_epoch_and_never_in_its_own_history():
    histories = literal_histories()
    seen = []
    for batch in fold_examples(
        histories, folds=4, max_targets=8, max_history=1000, batch_size=3, rng=np.random.default_rng(5)
    ):
        for i, user in enumerate(batch.user_idx):
            targets = batch.target_movie[i][batch.target_movie[i] != 0]
            history = batch.history_movie[i][batch.history_movie[i] != 0]
            assert not set(targets) & set(history), "the history holds the target it is trained to predict"
            own = histories.movies[histories.offsets[user] : histories.offsets[user + 1]]
            assert sorted([*targets, *history]) == sorted(own), "targets and history are all of the user's ratings"
            seen += [(int(user), int(movie)) for movie in targets]
    expected = [
        (u, int(m)) for u in range(9) for m in histories.movies[histories.offsets[u] : histories.offsets[u + 1]]
    ]
    assert sorted(seen) == sorted(expected)
    assert example_count(histories, 4, 8) == int(fold_counts(histories.lengths, 4, 8).sum())
    assert fold_counts(np.array([0, 1, 2, 5, 30, 39]), 4, 8).tolist() == [0, 1, 2, 4, 4, 5]


def test_history_cap_and_seeded_examples():
    histories = literal_histories()
    batches = list(fold_examples(histories, 2, 64, 5, 100, np.random.default_rng(1)))
    assert all((b.history_movie != 0).sum(axis=1).max() <= 5 for b in batches)
    assert "user_idx" not in batches[0].arrays(), "the towers never read whose example it is"
    again = list(fold_examples(histories, 2, 64, 5, 100, np.random.default_rng(1)))
    assert all((a.target_movie == b.target_movie).all() for a, b in zip(batches, again)), "seeded"


def test_history_dropout_keeps_a_random_part_of_each_history_and_every_target():
    histories = literal_histories()
    whole = list(fold_examples(histories, 4, 8, 1000, 3, np.random.default_rng(5)))
    dropped = list(fold_examples(histories, 4, 8, 1000, 3, np.random.default_rng(5), history_keep_min=0.2))
    assert len(dropped) == len(whole)
    kept = full = 0
    for a, b in zip(whole, dropped):
        assert (a.user_idx == b.user_idx).all() and (a.target_movie == b.target_movie).all(), "targets unchanged"
        for i in range(len(a.user_idx)):
            history = set(a.history_movie[i][a.history_movie[i] != 0])
            remaining = set(b.history_movie[i][b.history_movie[i] != 0])
            assert remaining <= history, "dropout only removes history movies"
            likes, full_likes = (dict(zip(x.history_movie[i], x.history_like[i])) for x in (b, a))
            assert all(likes[m] == full_likes[m] for m in remaining), "a kept movie keeps its like label"
            kept, full = kept + len(remaining), full + len(history)
    # 332 history slots, their kept share's expectation 0.6 (seeds 5-9 give 0.52-0.73); seeded, so exact.
    assert (kept, full) == (171, 332)
    off = list(fold_examples(histories, 4, 8, 1000, 3, np.random.default_rng(5), history_keep_min=1.0))
    assert all((a.history_movie == b.history_movie).all() for a, b in zip(whole, off)), "1 = the whole history"
    for outside in (-0.1, 1.5):
        with pytest.raises(ConfigError, match=r"history_keep_min must be in \[0, 1\]"):
            TrainConfig(history_keep_min=outside).validate()
    parts = [list(fold_examples(histories, 4, 8, 1000, 3, np.random.default_rng(5), p, 2, 0.2)) for p in range(2)]
    for batch, first, second in zip(dropped, *parts):
        merged = np.concatenate([first.user_idx, second.user_idx])
        assert (merged == batch.user_idx).all()
        assert {tuple(sorted(set(row) - {0})) for part in (first, second) for row in part.history_movie} == {
            tuple(sorted(set(row) - {0})) for row in batch.history_movie
        }, "two workers drop what one worker drops"


def test_sampled_candidates_hold_every_target_and_locate_targets_and_history():
    histories = literal_histories()
    sampler = Sampler.of(histories, SIZES["movie"], negatives=6)
    counts = np.bincount(histories.movies, minlength=SIZES["movie"])
    np.testing.assert_allclose(sampler.share, counts / counts.sum())
    batch = next(fold_examples(histories, 2, 64, 1000, 4, np.random.default_rng(3)))
    candidates = sampler.sample(batch, np.random.default_rng(8))
    movies = candidates.candidate_movie
    assert movies[0] == C.UNKNOWN_INDEX and (np.diff(movies[1:]) > 0).all()
    targets = batch.target_movie != 0
    assert set(batch.target_movie[targets]) <= set(movies[1:])
    assert (movies[candidates.target_position] == np.where(targets, batch.target_movie, 0)).all()
    history = batch.history_movie
    found = candidates.history_position != 0
    assert (movies[candidates.history_position[found]] == history[found]).all()
    assert not np.isin(history[~found & (history != 0)], movies).any(), "a candidate history movie left unmasked"
    draws = targets.sum() + 6
    expected = np.log(1 - (1 - sampler.share[movies[1:]]) ** draws)
    np.testing.assert_allclose(candidates.candidate_log_q[1:], expected, rtol=1e-5)
    assert candidates.candidate_log_q[0] == 0
    again = sampler.sample(batch, np.random.default_rng(8))
    assert (again.candidate_movie == movies).all(), "seeded"


def test_a_sampled_softmax_over_the_whole_vocabulary_without_correction_is_the_full_softmax():
    catalogue = literal_catalogue()
    trainer = twotower.Trainer(randomized_model(), twotower.movie_table(catalogue, SIZES["movie"]), dislike_weight=0.3)
    batch = next(fold_examples(literal_histories(), 2, 64, 1000, 8, np.random.default_rng(3))).arrays()
    whole = Candidates(
        np.arange(SIZES["movie"], dtype=np.int32),
        np.zeros(SIZES["movie"], np.float32),
        batch["target_movie"],
        batch["history_movie"],
    )

    def losses(arrays):
        return trainer.losses_of({name: tf.constant(value) for name, value in arrays.items()}, training=False)

    full, full_parts, _ = losses(batch)
    sampled, sampled_parts, _ = losses({**batch, **whole.arrays()})
    np.testing.assert_allclose(float(sampled), float(full), rtol=1e-6)
    for name, value in full_parts.items():
        np.testing.assert_allclose(float(sampled_parts[name]), float(value), rtol=1e-6)
    shifted = Candidates(
        whole.candidate_movie,
        np.log(np.arange(1, SIZES["movie"] + 1, dtype=np.float32)),
        whole.target_position,
        whole.history_position,
    )
    _, corrected_parts, _ = losses({**batch, **shifted.arrays()})
    assert float(corrected_parts["rank_loss"]) != pytest.approx(float(full_parts["rank_loss"]), rel=1e-3)
    assert float(corrected_parts["like_loss"]) == pytest.approx(float(full_parts["like_loss"]), rel=1e-6)


# --- numpy towers against Keras ------------------------------------------------------


def literal_catalogue(rows: int = 40) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    movie_idx = np.arange(rows)  # row 0 is a movie outside the vocabulary
    return {
        C.MOVIE_IDX: movie_idx.reshape(-1, 1).astype(np.int32),
        C.YEAR_IDX: rng.integers(0, SIZES["year"], (rows, 1)).astype(np.int32),
        M.GENRE_FLAGS: (rng.random((rows, len(C.GENRE_FLAG_COLUMNS))) < 0.2).astype(np.float32),
        M.TAG_IDX: rng.integers(0, SIZES["tag"], (rows, 3)).astype(np.int32),
    }


def randomized_model():
    model = twotower.build(SIZES, dim=8, hidden=16, head_hidden=8)
    rng = np.random.default_rng(4)
    for weight in model.weights:
        weight.assign(rng.normal(0, 0.5, weight.shape).astype(np.float32))
    return model


def test_numpy_towers_equal_keras_on_sampled_pairs():
    model = randomized_model()
    catalogue = literal_catalogue()
    towers = twotower.arrays(model, catalogue)
    histories = literal_histories()
    users = np.array([1, 3, 5, 6, 8])
    history_movie, history_like = user_history(histories, users)
    offsets = np.concatenate([[0], np.cumsum((history_movie != 0).sum(axis=1))])
    vectors = towers.user_vectors(offsets, history_movie[history_movie != 0], history_like[history_movie != 0])
    rng = np.random.default_rng(6)
    # Row 0, outside the vocabulary, differs on purpose (its bias): test_a_movie_outside_the_vocabulary_...
    rows, columns = np.repeat(np.arange(len(users)), 12), rng.integers(1, 40, len(users) * 12)
    feed = {
        twotower.HISTORY_MOVIE: history_movie[rows],
        twotower.HISTORY_LIKE: history_like[rows],
        **{name: values[columns] for name, values in catalogue.items()},
    }
    keras_out = model.predict(feed, verbose=0)
    keys = towers.keys(vectors)[rows, columns]
    like, stars = towers.heads(vectors, rows, columns)
    np.testing.assert_allclose(keys, keras_out[twotower.SCORE_OUTPUT][:, 0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(like, keras_out[twotower.LIKE_OUTPUT][:, 0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stars, keras_out[twotower.RATING_OUTPUT][:, 0], rtol=1e-5, atol=1e-5)
    blocked = towers.heads(vectors, rows, columns, block=7)  # 96 rows: 13 full blocks and a partial one
    np.testing.assert_allclose(blocked[0], like, rtol=1e-6)
    np.testing.assert_allclose(blocked[1], stars, rtol=1e-6)


def test_calibrating_the_like_head_scales_its_logit_in_the_model_and_its_arrays():
    model = randomized_model()
    catalogue = literal_catalogue()
    towers = twotower.arrays(model, catalogue)
    rng = np.random.default_rng(8)
    vectors = rng.normal(size=(6, 8)).astype(np.float32)
    users, columns = np.repeat(np.arange(6), 10), rng.integers(1, 40, 60)
    like, _ = towers.heads(vectors, users, columns)
    labels = (rng.random(60) < 0.5).astype(np.float64)
    record = twotower.calibrate_like(model, labels, like)
    scale = record["like_logit_scale"]
    assert scale == pytest.approx(metrics.logit_scale(labels, np.log(like) - np.log1p(-like)))
    assert record["log_loss_after"] <= record["log_loss_before"]
    calibrated, _ = twotower.arrays(model, catalogue).heads(vectors, users, columns)
    np.testing.assert_allclose(calibrated, metrics.sigmoid(scale * (np.log(like) - np.log1p(-like))), atol=1e-5)
    assert np.array_equal(calibrated >= 0.5, like >= 0.5), "a positive scale changes no like decision"
    assert record["log_loss_after"] == pytest.approx(metrics.log_loss(labels, calibrated), abs=1e-5)


def test_history_pooling_skips_padding_and_pools_each_group():
    pool = twotower.HistoryPool(6, 2)
    pool.build(None)
    table = np.arange(12, dtype=np.float32).reshape(6, 2)
    pool.embeddings.assign(table)
    movies = np.array([[1, 2, 3, 0], [4, 0, 0, 0], [0, 0, 0, 0]], np.int32)
    likes = np.array([[1, 1, 0, 1], [0, 1, 1, 1], [1, 1, 1, 1]], np.float32)
    pooled = pool([tf.constant(movies), tf.constant(likes)]).numpy()
    expected = np.array(
        [
            [*(table[1] + table[2]) / 2, *table[3], np.log(3), np.log(2)],
            [0, 0, *table[4], 0, np.log(2)],
            [0, 0, 0, 0, 0, 0],
        ],
        np.float32,
    )
    np.testing.assert_allclose(pooled, expected, rtol=1e-6)


def test_saved_model_loads_in_safe_mode_with_the_same_outputs(tmp_path):
    model = randomized_model()
    model.save(tmp_path / "model.keras")
    loaded = saved.load(tmp_path / "model.keras")
    catalogue = literal_catalogue()
    assert retrieval.is_twotower(loaded)
    before = twotower.arrays(model, catalogue)
    after = twotower.arrays(loaded, catalogue)
    np.testing.assert_array_equal(before.movies, after.movies)
    np.testing.assert_array_equal(before.user_vector.kernel, after.user_vector.kernel)


def test_a_movie_outside_the_vocabulary_gets_the_least_popular_bias():
    towers = twotower.arrays(randomized_model(), literal_catalogue())
    assert towers.movie_bias[0] == towers.movie_bias[1:].min()


# --- the scorer ----------------------------------------------------------------------


def scorer_and_users(model=None):
    """The two-tower scorer over the literal catalogue (movieIds 100, 102, ...) and a batch of users."""
    catalogue = literal_catalogue()
    towers = twotower.arrays(model or randomized_model(), catalogue)
    movie_ids = 100 + 2 * np.arange(40)
    scorer = TwoTowerScorer(towers, movie_ids, catalogue[C.MOVIE_IDX][:, 0].astype(np.int64), retrieval.FoldIn())
    users = pd.DataFrame(
        {
            C.USER_ID: [1, 2, 3, 4],
            C.USER_IDX: [3, 0, 0, 5],
            C.WATCHED: [[100, 104, 130], [102, 140, 150, 160], [170, 176], []],
            C.LIKED: [[104], [140, 150], [], []],
        }
    )
    return scorer, users


def test_two_tower_lists_equal_a_full_sort_and_never_hold_a_watched_movie():
    scorer, users = scorer_and_users()
    lists = recommend_batch(scorer, users, 10, block=3)
    _, rows, cols, liked = watched_positions(users, scorer.movie_ids)
    keys = scorer.towers.keys(scorer.vectors(Block(users[C.USER_IDX].to_numpy(), rows, cols, liked)))
    for row, (user, watched) in enumerate(zip(users[C.USER_ID], users[C.WATCHED])):
        eligible = np.flatnonzero(~np.isin(scorer.movie_ids, watched))
        order = eligible[np.lexsort((eligible, -keys[row, eligible]))][:10]
        got = lists[lists[C.USER_ID] == user]
        assert got[C.MOVIE_ID].tolist() == scorer.movie_ids[order].tolist()
        assert got[C.RANK].tolist() == list(range(1, 11))
        assert not set(got[C.MOVIE_ID]) & set(watched)


def test_users_outside_the_sample_get_lists_from_their_histories():
    scorer, users = scorer_and_users()
    lists = top_k_lists(scorer, users, 10, block=4)
    assert lists[2].tolist() != lists[3].tolist(), "two unknown users with different histories"
    swapped = users.assign(
        **{C.WATCHED: [users[C.WATCHED][i] for i in (0, 2, 1, 3)], C.LIKED: [users[C.LIKED][i] for i in (0, 2, 1, 3)]}
    )
    again = top_k_lists(scorer, swapped, 10, block=4)
    assert again[2].tolist() == lists[3].tolist() and again[3].tolist() == lists[2].tolist(), (
        "an unknown user's list is a function of their history alone"
    )


def test_fold_in_takes_gradient_steps_on_the_users_own_ratings():
    """Three movies at +1, -1 and 0 on one axis: the gradient steps by hand, exact to float32."""
    movies, bias = np.array([[1.0], [-1.0], [0.0]], np.float32), np.zeros(3, np.float32)
    rated = scipy.sparse.csr_matrix(np.array([[1, 0, 1], [0, 0, 0], [1, 1, 1], [1, 0, 0.25]], np.float32))
    start = np.zeros((4, 1), np.float32)
    fitted = retrieval.fold_in(start, rated, movies, bias, retrieval.FoldIn(steps=2, rate=0.5))
    # User 0 rated the first and the third movie; each competes with the second (unrated) alone. At u,
    # the first's softmax expects tanh(u), the third's -1 / (1 + e^u): the gradient is the mean of
    # 1 - tanh(u) and 0 + 1 / (1 + e^u), 0.75 at 0. With the rated movies as each other's rivals too
    # the first step would be 0.5 x (0.5 - 0) instead. User 1 rated nothing; user 2 rated every
    # movie, so each rated movie is alone in its softmax and nothing moves them. User 3 rated what
    # user 0 did, the third movie weighing 0.25 (a dislike): the same terms in a weighted mean.

    def gradient(u, third_weight):
        return ((1 - np.tanh(u)) + third_weight / (1 + np.exp(u))) / (1 + third_weight)

    def two_steps(third_weight):
        first = 0.5 * gradient(0.0, third_weight)
        return first + 0.5 * gradient(first, third_weight)

    assert 0.5 * gradient(0.0, 1.0) == 0.5 * 0.75
    np.testing.assert_allclose(fitted[:, 0], [two_steps(1.0), 0.0, 0.0, two_steps(0.25)], rtol=1e-6)
    assert np.array_equal(retrieval.fold_in(start, rated, movies, bias, retrieval.FoldIn(steps=0)), start)
    assert not start.any(), "the caller's vectors are left as they were"


def test_the_principal_basis_keeps_the_fewest_directions_holding_the_energy():
    """Rows along two axes with singular values 3 and 1: the first direction holds 9/10 of the energy."""
    movies = np.array([[3.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
    first = retrieval.principal_basis(movies, 0.9)
    assert first.shape == (3, 1)
    np.testing.assert_allclose(np.abs(first[:, 0]), [1.0, 0.0, 0.0])
    both = retrieval.principal_basis(movies, 0.95)
    assert both.shape == (3, 2)
    np.testing.assert_allclose(np.abs(both), [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], atol=1e-7)
    assert retrieval.principal_basis(movies, 1.0) is None, "energy 1: the vectors themselves"
    assert retrieval.principal_basis(np.zeros((2, 3), np.float32), 0.9) is None
    assert retrieval.principal_basis(np.where(movies > 2, np.nan, movies), 0.9) is None


def test_fold_in_in_a_basis_that_spans_the_movies_equals_the_full_space_fold_in():
    """Movies in a 2-d subspace of 4-d: their projections are themselves, and so are the steps; a user's
    component outside the subspace stays as it was."""
    rng = np.random.default_rng(5)
    movies = (rng.normal(size=(6, 2)) @ rng.normal(size=(2, 4))).astype(np.float32)
    bias = rng.normal(size=6).astype(np.float32)
    weights = [[1, 0, 0.25, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 1, 1, 0, 1, 0.25]]
    rated = scipy.sparse.csr_matrix(np.array(weights, np.float32))
    start = rng.normal(size=(3, 4)).astype(np.float32)
    settings = retrieval.FoldIn(steps=2, rate=0.5)
    basis = retrieval.principal_basis(movies, 0.999)
    assert basis.shape == (4, 2)
    projected = retrieval.fold_in(start, rated, movies @ basis, bias, settings, basis)
    np.testing.assert_allclose(projected, retrieval.fold_in(start, rated, movies, bias, settings), rtol=1e-5, atol=1e-6)
    outside = np.eye(4, dtype=np.float32) - basis @ basis.T
    np.testing.assert_allclose((projected - start) @ outside, 0.0, atol=1e-6)
    assert not np.allclose(projected[[0, 2]], start[[0, 2]]) and np.array_equal(projected[1], start[1])


def test_the_scoring_config_rejects_negative_fold_in_steps_non_positive_rates_or_weights_and_energies_outside_0_1():
    bad_settings = (
        {"fold_in_steps": -1},
        {"fold_in_rate": 0.0},
        {"fold_in_dislike_weight": 0.0},
        {"fold_in_energy": 0.0},
        {"fold_in_energy": 1.5},
    )
    for bad in bad_settings:
        with pytest.raises(ConfigError, match="fold_in"):
            ScoreConfig(**bad).validate()


def test_scoring_fits_only_the_users_outside_the_sample_to_their_histories():
    scorer, users = scorer_and_users()
    _, rows, cols, liked = watched_positions(users, scorer.movie_ids)
    block = Block(users[C.USER_IDX].to_numpy(), rows, cols, liked)
    fitted = scorer.vectors(block)
    tower = TwoTowerScorer(scorer.towers, scorer.movie_ids, scorer.movie_idx, retrieval.FoldIn(steps=0)).vectors(block)
    outside = (users[C.USER_IDX] == C.UNKNOWN_INDEX).to_numpy()
    assert np.array_equal(fitted[~outside], tower[~outside]), "trained users keep the tower's vector"

    def likelihood(vectors):
        """Each fitted user's weighted mean log-probability of a rated movie among it and the unrated vocabulary
        movies (a liked movie weighs 1, another the fold-in's dislike weight)."""
        keys = scorer.towers.keys(vectors).astype(np.float64)
        means = []
        for row in np.flatnonzero(outside):
            mine = rows == row
            rated, at = np.intersect1d(cols[mine], scorer.vocabulary, return_indices=True)[:2]
            weight = np.where(liked[mine][at], 1.0, scorer.fold_in.dislike_weight)
            unrated = np.setdiff1d(scorer.vocabulary, rated)
            rivals = np.logaddexp.reduce(keys[row, unrated])
            means.append(np.average(keys[row, rated] - np.logaddexp(keys[row, rated], rivals), weights=weight))
        return means

    assert not np.allclose(fitted[outside], tower[outside])
    # A small enough step raises the likelihood of each fitted user's own rated movies (in the full space).
    exact = retrieval.FoldIn(steps=1, rate=1e-3, energy=1.0)
    small = TwoTowerScorer(scorer.towers, scorer.movie_ids, scorer.movie_idx, exact)
    assert all(after > before for after, before in zip(likelihood(small.vectors(block)), likelihood(tower)))


def test_fold_in_weighs_a_users_disliked_movies_by_the_dislike_weight():
    """userId 2 liked two of their four movies, userId 3 neither of their two: only the first has a mix to weigh."""
    scorer, users = scorer_and_users()
    _, rows, cols, liked = watched_positions(users, scorer.movie_ids)
    block = Block(users[C.USER_IDX].to_numpy(), rows, cols, liked)

    def fitted(weight):
        return TwoTowerScorer(
            scorer.towers, scorer.movie_ids, scorer.movie_idx, retrieval.FoldIn(dislike_weight=weight)
        )

    even, weighted = fitted(1.0).vectors(block), fitted(0.25).vectors(block)
    assert not np.allclose(even[1], weighted[1])
    np.testing.assert_allclose(even[2], weighted[2], rtol=1e-6)


def test_a_twotower_block_can_be_scored_from_liked_flags_alone():
    """Liking a watched movie or not changes the vector: the history's labels are read."""
    scorer, users = scorer_and_users()
    flipped = users.assign(**{C.LIKED: [[100, 130], [102], [170, 176], []]})
    first = recommend_batch(scorer, users, 10, block=4)
    second = recommend_batch(scorer, flipped, 10, block=4)
    assert not np.allclose(first[C.SCORE].to_numpy(), second[C.SCORE].to_numpy())


# --- the jobs -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tower_model(prepared_small, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("towers") / "model"
    load_job("train").main(["--data", str(prepared_small), "--output", str(output), *TINY_TOWERS])
    return output


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_the_training_job_trains_and_validates_by_ranking(tower_model, prepared_small):
    document = read_json(tower_model / "metrics.json")
    assert document["model"] == "twotower" and document["monitor"] == "val_ndcg@10"
    assert [entry["epoch"] for entry in document["history"]] == [0, 1]
    assert all(0 < entry["val_ndcg@10"] < 1 and 0 < entry["val_like_auc"] < 1 for entry in document["history"])
    assert document["history"][-1]["val_like_auc"] > 0.6, "two epochs teach the like head something"
    like = document["test"][twotower.LIKE_OUTPUT]
    assert like["rows"] == read_json(prepared_small / "manifest.json")["rows"]["test"]
    assert like["accuracy"] > document["test"]["baselines"]["majority_accuracy"]
    calibration = document["test"]["calibration"]
    assert calibration["like_logit_scale"] > 0
    assert calibration["log_loss_after"] <= calibration["log_loss_before"], "fitted on the holdout it scores"
    assert 0 < document["test"][twotower.RATING_OUTPUT]["rmse"] < 1.3
    assert retrieval.is_twotower(saved.load(tower_model / "model.keras"))
    assert not (tower_model / "importance.json").exists()
    assert (tower_model / "figures" / "training.png").stat().st_size > 10_000


def test_a_killed_two_tower_run_resumes_to_the_uninterrupted_result(tower_model, prepared_small, tmp_path, monkeypatch):
    output = tmp_path / "model"

    class Interrupt(RuntimeError):
        pass

    class DiesInSecondEpoch(callbacks.RowsPerSecond):
        def on_train_batch_end(self, batch, logs=None):
            super().on_train_batch_end(batch, logs)
            if self.model.optimizer.iterations.numpy() > self.params["steps"] + 3:
                raise Interrupt("killed")

    job = load_job("train")
    monkeypatch.setattr(fitting, "RowsPerSecond", DiesInSecondEpoch)
    with pytest.raises(Interrupt):
        job.main(["--data", str(prepared_small), "--output", str(output), *TINY_TOWERS])
    assert callbacks.resumed_epoch(output.with_name("model.backup")) == 1
    monkeypatch.undo()
    resumed = job.main(["--data", str(prepared_small), "--output", str(output), *TINY_TOWERS])
    uninterrupted = read_json(tower_model / "metrics.json")
    strip = [{k: v for k, v in e.items() if k != "rows_per_s"} for e in uninterrupted["history"]]
    assert [{k: v for k, v in e.items() if k != "rows_per_s"} for e in resumed["history"]] == strip
    assert resumed["test"] == uninterrupted["test"]


def test_scoring_every_user_with_the_two_tower_model(tower_model, prepared_small, tmp_path):
    output = tmp_path / "scores"
    document = load_job("score").main(
        ["--data", str(prepared_small), "--model", str(tower_model), "--output", str(output), "--set", "users=all"]
    )
    assert document["path"]["kernel"] == "dot" and document["path"]["output"] == twotower.SCORE_OUTPUT
    assert document["users"]["scored"] == 610 and document["users"]["without_history"] == 0
    assert 0 < document["worker_user_vector_cpu_s"] < document["worker_cpu_s"]
    recs = pq.read_table(output / "recommendations").to_pandas()
    assert len(recs) == 6100
    watched = pq.read_table(prepared_small / "interactions", columns=[C.USER_ID, C.MOVIE_ID]).to_pandas()
    assert recs.merge(watched, on=[C.USER_ID, C.MOVIE_ID]).empty


def test_evaluating_the_two_tower_model_classifies_as_the_training_job_did(tower_model, prepared_small, tmp_path):
    document = load_job("evaluate").main(
        [
            "--data",
            str(prepared_small),
            "--model",
            str(tower_model),
            "--output",
            str(tmp_path / "evaluation"),
            "--set",
            "baselines=popular",
        ]
    )
    assert document["evaluated_model"] == "twotower" and list(document["models"]) == ["twotower", "popular"]
    ours = document["models"]["twotower"]
    trained = read_json(tower_model / "metrics.json")["test"][twotower.LIKE_OUTPUT]
    assert ours["classification"]["accuracy"] == pytest.approx(trained["accuracy"], abs=1e-9)
    assert ours["classification"]["auc"] == pytest.approx(trained["auc"], abs=1e-9)
    assert ours["details"]["ranking_output"] == twotower.SCORE_OUTPUT
    assert 0 < ours["ranking"]["ndcg@10"] < 1


def test_validation_ndcg_is_the_evaluations_protocol_on_the_holdout():
    """ranking_ndcg on a literal case: one user, relevant column ranked first by construction."""
    model = randomized_model()
    catalogue = towertrain.Catalogue(literal_catalogue(), np.arange(40) - (np.arange(40) == 0))
    towers = twotower.arrays(model, catalogue.inputs)
    histories = literal_histories()
    keys = towers.keys(towertrain.user_vectors(towers, histories, np.array([4])))[0]
    own = histories.movies[histories.offsets[4] : histories.offsets[5]]
    keys[own] = -np.inf
    best = int(np.argmax(keys))
    assert towertrain.ranking_ndcg(towers, histories, catalogue, np.array([4]), {4: np.array([best])}, 10) == 1.0


@pytest.fixture(scope="module")
def half_sample(ml_small, prepare_job, tmp_path_factory) -> tuple[Path, Path]:
    """prepare with 300 of ml-latest-small's 610 users sampled, and a tiny two-tower model trained on it."""
    root = tmp_path_factory.mktemp("half")
    prepare_job.main(["--input", str(ml_small), "--output", str(root / "prepared"), "--set", "sample_users=300"])
    load_job("train").main(["--data", str(root / "prepared"), "--output", str(root / "model"), *TINY_TOWERS])
    return root / "prepared", root / "model"


def test_held_out_users_are_ranked_from_their_histories(half_sample, tmp_path):
    prepared, model = half_sample
    output = tmp_path / "evaluation"
    document = load_job("evaluate").main(
        [
            "--data",
            str(prepared),
            "--model",
            str(model),
            "--output",
            str(output),
            "--set",
            "baselines=ease,popular",
            "--set",
            "held_out_users=200",
            # One EASE setting: this test is about the held-out users, not EASE's search.
            "--set",
            "ease_lambdas=300",
            "--set",
            "ease_dislike_weights=0.5",
        ]
    )
    held = document["split"]["held_out"]
    assert 0 < held["users_with_liked_test_movie"] <= 200 and held["history_ratings"] > 5 * held["test_ratings"]
    assert set(document["models"]) == {"twotower", "ease", "popular"}
    # That their lists depend on their histories is test_users_outside_the_sample_get_lists_from_their_histories;
    # a two-epoch model's lists are too close to popularity to show it here.
    for name in ("twotower", "ease", "popular"):
        held_out = document["models"][name]["held_out_ranking"]
        assert 0 < held_out["ndcg@10"] < 1 and held_out["ndcg@10"] != document["models"][name]["ranking"]["ndcg@10"]
    report = (output / "report.md").read_text()
    assert "## Top-10 for users outside the training sample" in report and "| twotower | " in report
