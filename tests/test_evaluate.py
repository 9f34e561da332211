"""Evaluation: ranking metrics on hand-computed lists, baselines on ml-latest-small, the evaluate job."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sparkrec.core import columns as C
from sparkrec.core import ranking
from sparkrec.core.config import load_config
from sparkrec.evaluate import als, baselines, ease
from sparkrec.evaluate import stages as evaluation
from sparkrec.evaluate.config import EvaluateConfig, EvaluateError
from sparkrec.evaluate.data import EvalData, load_data, relevant_sets
from sparkrec.evaluate.logistic import fit_logistic
from sparkrec.evaluate.measures import LISTED_POPULARITY
from sparkrec.evaluate.popular import fit_popular
from sparkrec.evaluate.report import report as render_report
from sparkrec.evaluate.tuning import FitFailed, RankingCarveOut, Skipped, carve_validation, search
from sparkrec.score.config import ScoreError
from sparkrec.score.planning import read_tables
from sparkrec.score.scorers import Block, top_k_lists

from helpers import emptied_copy, load_job, run_job, tree_digest

# One user's list [1, 2, 3, 4, 5] against liked movies {2, 4, 9}: hits at positions 2 and 4.
RANKED = np.array([1, 2, 3, 4, 5])
LIKED = {2, 4, 9}
DCG_HITS_2_4 = 1 / math.log2(3) + 1 / math.log2(5)
IDEAL_3 = 1 + 1 / math.log2(3) + 1 / math.log2(4)


@pytest.mark.parametrize(
    ("k", "precision", "recall", "ndcg", "ap"),
    [
        (5, 2 / 5, 2 / 3, DCG_HITS_2_4 / IDEAL_3, (1 / 2 + 2 / 4) / 3),
        (2, 1 / 2, 1 / 3, (1 / math.log2(3)) / (1 + 1 / math.log2(3)), (1 / 2) / 2),
        (1, 0.0, 0.0, 0.0, 0.0),
        # k beyond the list: the missing positions are misses.
        (10, 2 / 10, 2 / 3, DCG_HITS_2_4 / IDEAL_3, (1 / 2 + 2 / 4) / 3),
    ],
)
def test_metrics_of_a_known_list(k, precision, recall, ndcg, ap):
    assert ranking.precision_at_k(RANKED, LIKED, k) == pytest.approx(precision, abs=1e-15)
    assert ranking.recall_at_k(RANKED, LIKED, k) == pytest.approx(recall, abs=1e-15)
    assert ranking.ndcg_at_k(RANKED, LIKED, k) == pytest.approx(ndcg, abs=1e-15)
    assert ranking.average_precision_at_k(RANKED, LIKED, k) == pytest.approx(ap, abs=1e-15)


def test_perfect_and_empty_lists():
    assert ranking.ndcg_at_k(np.array([4, 2, 9]), LIKED, 3) == 1.0
    assert ranking.average_precision_at_k(np.array([4, 2, 9, 7]), LIKED, 4) == 1.0
    empty = np.array([], dtype=np.int64)
    assert ranking.precision_at_k(empty, LIKED, 3) == 0.0
    assert ranking.ndcg_at_k(empty, LIKED, 3) == 0.0


def test_mean_over_users_with_a_liked_movie():
    lists = {1: RANKED, 2: np.array([7, 8])}
    relevant = {1: LIKED, 2: {8}, 3: set(), 4: {5}}  # user 3: nothing liked (skipped); user 4: no list (zeros)
    means = ranking.mean_ranking_metrics(lists, relevant, 2)
    assert means["precision@2"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert means["recall@2"] == pytest.approx((1 / 3 + 1 + 0) / 3)
    user2_ndcg = (1 / math.log2(3)) / 1
    assert means["ndcg@2"] == pytest.approx(((1 / math.log2(3)) / (1 + 1 / math.log2(3)) + user2_ndcg) / 3)
    assert means["map@2"] == pytest.approx((1 / 4 + 1 / 2) / 3)


def test_mean_needs_a_liked_movie():
    with pytest.raises(ValueError, match="no user has a relevant item"):
        ranking.mean_ranking_metrics({1: RANKED}, {1: set()}, 3)


def test_catalogue_coverage_counts_distinct_items_in_the_head():
    lists = {1: np.array([1, 2, 3]), 2: np.array([2, 5, 6])}
    assert ranking.catalogue_coverage(lists, 10, 2) == 3 / 10


def test_mean_popularity_of_the_listed_items():
    lists = {1: np.array([1, 2, 3]), 2: np.array([2, 5])}
    assert ranking.mean_popularity(lists, {1: 10, 2: 4, 3: 100}, 2) == (10 + 4 + 4 + 0) / 4
    assert ranking.mean_popularity({}, {1: 10}, 2) == 0.0


# --- baselines and the job on ml-latest-small ------------------------------------

# Small grids keep the job to about a minute; docs/results.md has the full runs.
QUICK = {
    "als_ranks": "5",
    "als_reg_params": "0.1",
    "als_max_iter": "5",
    "als_implicit_ranks": "8",
    "als_implicit_reg_params": "0.1",
    "als_implicit_alphas": "1",
    "als_implicit_search_iter": "5",
    "als_implicit_max_iter": "5",
    "ease_lambdas": "300",
    "ease_dislike_weights": "0.5",
    "logistic_reg_params": "0.001",
    "logistic_max_iter": "15",
}
MODELS = ("deep", "als_implicit", "ease", "popular", "als", "logistic")


def quick_config(**overrides) -> EvaluateConfig:
    return load_config(EvaluateConfig, None, {**QUICK, **overrides})


def settings(values: dict) -> list[str]:
    return [part for key, value in values.items() for part in ("--set", f"{key}={value}")]


@pytest.fixture(scope="module")
def evaluate_job():
    return load_job("evaluate")


@pytest.fixture(scope="module")
def evaluated(evaluate_job, prepared_small, trained, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("evaluation") / "out"
    argv = ["--data", str(prepared_small), "--model", str(trained), "--output", str(output)]
    evaluate_job.main(argv + settings(QUICK))
    return output


@pytest.fixture(scope="module")
def data(spark, prepared_small) -> EvalData:
    """The split as evaluated for a seeded sample of 120 users."""
    return load_data(spark, read_tables(spark, str(prepared_small)), quick_config(eval_users="120"))


def read_split(prepared: Path, split: str) -> pd.DataFrame:
    return pd.read_parquet(prepared / split, columns=[C.USER_ID, C.MOVIE_ID, C.LIKE])


def test_job_writes_report_metrics_and_chart(evaluated, prepared_small, trained):
    document = json.loads((evaluated / evaluation.METRICS).read_text())
    assert list(document["models"]) == list(MODELS)
    assert document["config"]["k"] == 10 and document["config"]["als_ranks"] == [5]
    assert document["skipped"] == {}
    for name, setting in (
        ("als_implicit", {"rank": 8, "reg_param": 0.1, "alpha": 1.0}),
        ("ease", {"dislike_weight": 0.5, "lambda": 300.0}),
        ("als", {"rank": 5, "reg_param": 0.1}),
        ("logistic", {"reg_param": 0.001}),
    ):
        details = document["models"][name]["details"]
        assert details["chosen"] == setting and [row["validation"] > 0 for row in details["grid"]] == [True], name
    assert document["models"]["ease"]["details"]["validation"] == "ndcg@10"
    assert document["models"]["ease"]["details"]["items"] == read_split(prepared_small, "train")[C.MOVIE_ID].nunique()
    assert document["prepare_config"]["like_threshold"] == 3.5
    assert {"pyspark", "numpy", "keras", "spark"} <= set(document["versions"])
    assert document["model"] == str(trained) and document["data"] == str(prepared_small)
    # Every user with a test rating is evaluated: the deep model's numbers are the trainer's own.
    trainer = json.loads((trained / "metrics.json").read_text())["test"]["like"]
    ours = document["models"]["deep"]["classification"]
    for metric in ("rows", "accuracy", "precision", "recall", "f1"):
        assert ours[metric] == trainer[metric], metric
    for metric in ("auc", "log_loss"):
        assert ours[metric] == pytest.approx(trainer[metric], abs=1e-6), metric
    # Classification reads the like head; the lists come from the rank head the scorer picks.
    assert document["models"]["deep"]["details"]["ranking_output"] == "rank"
    report = (evaluated / evaluation.REPORT).read_text()
    assert "classifies with its `like` output, ranks with its `rank` output" in report
    for name in MODELS:
        assert report.count(f"| {name} |") == 2  # one row in each table
    for name in MODELS[1:]:
        assert f"- vs {name}: accuracy" in report
        assert f"- {name}: chosen " in report or name == "popular"
    margins = document["model_minus_baseline"]
    behind = [name for name in MODELS[1:] if min(margins[name]["accuracy"], margins[name]["ndcg@10"]) <= 0]
    assert ("**`deep` is behind** " in report) == bool(behind)
    if behind:
        sentence = report.split("**`deep` is behind** ")[1].split("\n")[0]
        assert re.findall(r"(\w+) \((?:accuracy|NDCG@10) ", sentence) == behind
    assert (evaluated / evaluation.CHART).stat().st_size > 10_000
    assert not Path(f"{evaluated}.staging").exists()
    assert not Path(evaluated / "_checkpoints").exists(), "ALS's checkpoints are removed before the commit"
    without_ease = {
        **document,
        "models": {n: r for n, r in document["models"].items() if n != "ease"},
        "model_minus_baseline": {n: v for n, v in margins.items() if n != "ease"},
        "skipped": {"ease": "train rates 9,999 movies, above ease_max_items=10"},
    }
    assert "- ease: **skipped**, train rates 9,999 movies, above ease_max_items=10\n" in render_report(without_ease)
    asked = {**document, "config": {**document["config"], "held_out_users": 5}}
    assert "None: prepare sampled every user with a rating" in render_report(asked), "prepare sampled all 610"
    assert "users outside the training sample" not in report


def test_metrics_are_in_range_and_models_beat_the_majority_class(evaluated, prepared_small):
    document = json.loads((evaluated / evaluation.METRICS).read_text())
    train, test = read_split(prepared_small, "train"), read_split(prepared_small, "test")
    majority_accuracy = float((test[C.LIKE] == int(train[C.LIKE].mean() >= 0.5)).mean())
    split = document["split"]
    assert split["majority_accuracy"] == majority_accuracy
    assert (split["test_rows"], split["users_evaluated"]) == (len(test), test[C.USER_ID].nunique())
    assert split["users_with_liked_test_movie"] == test.loc[test[C.LIKE] == 1, C.USER_ID].nunique()
    for name in ("deep", "als", "logistic"):
        assert document["models"][name]["classification"]["accuracy"] > majority_accuracy, name
    for name in ("als_implicit", "ease"):
        assert document["models"][name]["ranking"]["ndcg@10"] > document["models"]["popular"]["ranking"]["ndcg@10"]
    for name, result in document["models"].items():
        classified, ranked = result["classification"], result["ranking"]
        assert classified["rows"] == len(test)
        assert 0.5 < classified["auc"] < 1 and 0 < classified["log_loss"] < 1, name
        popularity = ranked.pop(f"{LISTED_POPULARITY}@10")
        assert all(0 <= value <= 1 for value in ranked.values()), name
        assert ranked["coverage@10"] > 0 and popularity > 0, name
    assert document["models"]["popular"]["ranking"]["ndcg@10"] > 0.02


def test_a_user_sample_keeps_exactly_its_users_test_rows(data, prepared_small):
    test = read_split(prepared_small, "test")
    chosen = set(data.users[C.USER_ID])
    assert len(chosen) == 120 and chosen <= set(test[C.USER_ID])
    assert len(data.labels) == test[C.USER_ID].isin(chosen).sum()
    assert set(data.relevant) == set(test.loc[test[C.USER_ID].isin(chosen) & (test[C.LIKE] == 1), C.USER_ID])


def test_carve_out_is_a_disjoint_nonempty_share_of_train(data):
    fit_part, validation = carve_validation(data.train, 0.1, 42)
    n_fit, n_validation, n_train = fit_part.count(), validation.count(), data.train.count()
    assert n_fit + n_validation == n_train
    assert 0.08 < n_validation / n_train < 0.12


def test_popular_lists_are_the_most_liked_unwatched_movies(data, prepared_small):
    popular = fit_popular(data.train, data.catalogue, prior=2.0)
    users = data.users.head(6)
    lists = top_k_lists(popular, users, 10, block=4)
    train = read_split(prepared_small, "train")
    likes = train.groupby(C.MOVIE_ID)[C.LIKE].sum().reindex(data.catalogue[C.MOVIE_ID], fill_value=0)
    ordered = likes.reset_index().sort_values([C.LIKE, C.MOVIE_ID], ascending=[False, True])[C.MOVIE_ID]
    for user in users[C.USER_ID]:
        watched = set(train.loc[train[C.USER_ID] == user, C.MOVIE_ID])
        expected = [movie for movie in ordered if movie not in watched][:10]
        assert lists[user].tolist() == expected


def test_logistic_scores_are_its_spark_probabilities(spark, data):
    logistic = fit_logistic(spark, data.train, data.catalogue, data.vocab_sizes, [1e-3], 10, 0.1, 42, 0)
    classified = logistic.classify(data.test).merge(
        data.test.select(C.USER_ID, C.MOVIE_ID, C.USER_IDX).toPandas(), on=[C.USER_ID, C.MOVIE_ID]
    )
    row = pd.Series(np.arange(len(data.catalogue)), index=data.catalogue[C.MOVIE_ID].to_numpy())
    logits = logistic.user_terms[classified[C.USER_IDX]] + logistic.movie_terms[row[classified[C.MOVIE_ID]].to_numpy()]
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), classified[baselines.PROBABILITY], rtol=1e-9)


# --- the ranking baselines on two disjoint taste groups -----------------------------------------

GROUP_USERS, GROUP_MOVIES, RATED = 20, 10, 6


@pytest.fixture(scope="module")
def taste_groups(spark):
    """Users 1-20 rate only movies 1-10, users 21-40 only movies 11-20 (6 each, all liked); the last
    rating of each user is the carve-out. user_idx = userId, movie_idx = movieId."""
    from pyspark.sql import types as T

    rng = np.random.default_rng(3)
    rows = []
    for user in range(1, 2 * GROUP_USERS + 1):
        first = 1 if user <= GROUP_USERS else GROUP_MOVIES + 1
        for order, movie in enumerate(rng.choice(np.arange(first, first + GROUP_MOVIES), RATED, replace=False)):
            rows.append((user, int(movie), user, int(movie), 4.0, 1, order))
    fields = [
        (C.USER_ID, T.IntegerType()),
        (C.MOVIE_ID, T.IntegerType()),
        (C.USER_IDX, T.IntegerType()),
        (C.MOVIE_IDX, T.IntegerType()),
        (C.RATING, T.FloatType()),
        (C.LIKE, T.IntegerType()),
        (C.TIMESTAMP, T.LongType()),
    ]
    train = spark.createDataFrame(rows, T.StructType([T.StructField(name, kind) for name, kind in fields])).cache()
    frame = pd.DataFrame(rows, columns=[name for name, _ in fields])
    held = frame[C.TIMESTAMP] == RATED - 1
    fit_part = frame[~held]

    def watched(part):
        return part.groupby(C.USER_ID)[C.MOVIE_ID].apply(list).rename(C.WATCHED).reset_index()

    users = watched(fit_part).assign(**{C.USER_IDX: lambda f: f[C.USER_ID]})
    carve_out = RankingCarveOut(
        fit=train.filter(f"{C.TIMESTAMP} < {RATED - 1}").cache(),
        validation=frame[held][[C.USER_ID, C.MOVIE_ID, C.USER_IDX, C.LIKE]].reset_index(drop=True),
        users=users,
        relevant=relevant_sets(frame[held]),
        k=3,
        block=8,
    )
    catalogue = pd.DataFrame({C.MOVIE_ID: np.arange(1, 2 * GROUP_MOVIES + 1), C.MOVIE_IDX: np.arange(1, 21)})
    everyone = watched(frame).assign(**{C.USER_IDX: lambda f: f[C.USER_ID]})
    sizes = {"user": 2 * GROUP_USERS + 1, "movie": 2 * GROUP_MOVIES + 1}
    return train, catalogue, sizes, carve_out, everyone


def assert_lists_stay_in_the_users_group(model, everyone, k=3):
    lists = top_k_lists(model, everyone, k, block=7)
    assert set(lists) == set(everyone[C.USER_ID])
    for user, watched in zip(everyone[C.USER_ID], everyone[C.WATCHED]):
        group = range(1, GROUP_MOVIES + 1) if user <= GROUP_USERS else range(GROUP_MOVIES + 1, 2 * GROUP_MOVIES + 1)
        assert len(lists[user]) == k and set(lists[user]) <= set(group), (user, lists[user])
        assert not set(lists[user]) & set(watched), "a watched movie was recommended"


def test_implicit_als_recommends_from_the_users_own_group(taste_groups):
    train, catalogue, sizes, carve_out, everyone = taste_groups
    axes = {"rank": [2, 4], "reg_param": [0.1], "alpha": [10.0]}
    model = als.fit_als_implicit(train, catalogue, sizes, carve_out, axes, (5, 10), 1, 2, "binary", widen=0, max_rank=4)
    assert_lists_stay_in_the_users_group(model, everyone)
    details = model.details()
    assert [row["rank"] for row in details["grid"]] == [2, 4] and details["chosen"]["rank"] in (2, 4)
    assert (details["signal"], details["search_iter"], details["max_iter"]) == ("binary", 5, 10)
    assert details["validation"] == "ndcg@3"


def test_a_setting_mllib_cannot_solve_is_recorded_and_the_search_goes_on(spark, taste_groups):
    """User 41 only disliked: with alpha 0 MLlib gives them no regularization, and at rank 30 over 20
    items their normal equations are singular; rank 4 is solvable."""
    train, catalogue, sizes, carve_out, _ = taste_groups
    disliker = spark.createDataFrame([(41, movie, 41, movie, 1.0, 0, 0) for movie in (1, 2, 3)], train.schema)
    train = train.unionByName(disliker)
    carve_out = RankingCarveOut(
        carve_out.fit.unionByName(disliker),
        carve_out.validation,
        carve_out.users,
        carve_out.relevant,
        carve_out.k,
        carve_out.block,
    )
    sizes = {**sizes, "user": sizes["user"] + 1}
    axes = {"rank": [4, 30], "reg_param": [0.1], "alpha": [0.0]}
    model = als.fit_als_implicit(train, catalogue, sizes, carve_out, axes, (3, 3), 1, 2, "like", widen=0, max_rank=30)
    failed = model.details()["grid"][1]
    assert model.details()["chosen"]["rank"] == 4
    assert (failed["rank"], failed["validation"]) == (30, None) and "singular" in failed["failed"]
    with pytest.raises(FitFailed, match="no setting of its grid could be fitted"):
        als.fit_als_implicit(
            train, catalogue, sizes, carve_out, {**axes, "rank": [30]}, (3, 3), 1, 2, "like", widen=0, max_rank=30
        )


def test_ease_recommends_from_the_users_own_group_and_scores_the_other_group_zero(taste_groups):
    train, catalogue, sizes, carve_out, everyone = taste_groups
    model = ease.fit_ease(train, catalogue, sizes, carve_out, [1.0, 10.0], [1.0], max_items=20, widen=0)
    assert_lists_stay_in_the_users_group(model, everyone)
    scores = model.scores(np.array([1, 40]))
    assert (scores[0, GROUP_MOVIES:] == 0).all() and (scores[1, :GROUP_MOVIES] == 0).all()
    assert model.details()["items"] == 20 and [row["lambda"] for row in model.details()["grid"]] == [1.0, 10.0]


def test_ease_above_its_item_limit_is_skipped_with_the_reason(taste_groups):
    train, catalogue, sizes, carve_out, _ = taste_groups
    with pytest.raises(Skipped) as skipped:
        ease.fit_ease(train, catalogue, sizes, carve_out, [1.0], [1.0], max_items=19, widen=0)
    assert str(skipped.value) == (
        "train rates 20 movies, above ease_max_items=19 (the Gram matrix alone would take 0.0 GiB)"
    )


def test_ease_weights_are_the_closed_form_with_a_zero_diagonal():
    rng = np.random.default_rng(0)
    history = (rng.random((60, 2100)) < 0.05).astype(np.float64)  # more items than one mirrored band
    gram = history.T @ history
    inverse = np.linalg.inv(gram + 7.0 * np.eye(len(gram)))
    expected = -inverse / np.diag(inverse)[None, :]
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(ease.weights(gram, 7.0), expected, atol=1e-12)
    np.testing.assert_allclose(ease.weights(gram.astype(np.float32), 7.0), expected, atol=1e-5)


def test_ease_ranks_a_block_from_its_watched_movies_as_from_its_fitted_history():
    """keys(block) reads the block's watched cells; for users it was fitted on they are its history."""
    rng = np.random.default_rng(2)
    pairs = pd.DataFrame({C.USER_IDX: rng.integers(1, 6, 80), C.MOVIE_IDX: rng.integers(1, 30, 80)})
    pairs = pairs.drop_duplicates().sort_values([C.USER_IDX, C.MOVIE_IDX], ignore_index=True)
    pairs[C.LIKE] = rng.integers(0, 2, len(pairs))
    matrix = ease.Matrix(pairs, users=6, dislike_weight=0.25)
    catalogue = pd.DataFrame({C.MOVIE_ID: np.arange(100, 140), C.MOVIE_IDX: np.r_[np.arange(0, 35), np.zeros(5, int)]})
    model = ease.Ease(
        catalogue[C.MOVIE_ID].to_numpy(),
        matrix.history,
        ease.weights(matrix.gram(), 3.0),
        matrix.columns(catalogue),
        dislike_weight=0.25,
    )
    users = np.array([1, 3, 5])
    rows, cols, liked = [], [], []
    for row, user in enumerate(users):
        mine = pairs[pairs[C.USER_IDX] == user]
        rows += [row] * len(mine)
        cols += np.searchsorted(catalogue[C.MOVIE_IDX].to_numpy()[:35], mine[C.MOVIE_IDX].to_numpy()).tolist()
        liked += (mine[C.LIKE] == 1).tolist()
    block = Block(users, np.array(rows), np.array(cols), np.array(liked))
    expected = model.scores(users)
    expected[block.watched_rows, block.watched_cols] = -np.inf
    np.testing.assert_allclose(model.keys(block), expected, rtol=1e-6)
    # The user index plays no part: users EASE was not fitted on are ranked the same way.
    unknown = Block(np.zeros(3, np.int64), block.watched_rows, block.watched_cols, block.watched_liked)
    np.testing.assert_allclose(model.keys(unknown), expected, rtol=1e-6)
    # A disliked movie counts a quarter of a liked one: the likes alone would rank otherwise.
    likes_only = Block(users, block.watched_rows, block.watched_cols, np.ones_like(block.watched_liked))
    assert not np.allclose(model.keys(likes_only), expected)


def test_ease_with_dislike_weight_zero_is_ease_on_the_likes_alone():
    rng = np.random.default_rng(3)
    pairs = pd.DataFrame({C.USER_IDX: rng.integers(1, 9, 200), C.MOVIE_IDX: rng.integers(1, 40, 200)})
    pairs = pairs.drop_duplicates(ignore_index=True)
    pairs[C.LIKE] = rng.integers(0, 2, len(pairs))
    weighted = ease.Matrix(pairs, users=9, dislike_weight=0.0)
    likes = pairs[pairs[C.LIKE] == 1]
    liked_only = ease.Matrix(likes, users=9, dislike_weight=1.0)
    # The same items where every rated movie was also liked by someone; compare on those.
    shared = np.isin(weighted.items, liked_only.items)
    gram = weighted.gram()[np.ix_(shared, shared)]
    np.testing.assert_array_equal(gram, liked_only.gram())
    assert (weighted.gram()[~shared] == 0).all()
    np.testing.assert_array_equal(weighted.history.toarray()[:, shared], liked_only.history.toarray())


def test_calibration_recovers_a_known_logistic_link():
    rng = np.random.default_rng(1)
    scores = rng.normal(3.0, 2.0, 200_000)
    likes = rng.random(len(scores)) < 1 / (1 + np.exp(-(0.8 * scores - 2.0)))
    fitted = baselines.Calibration.fit(scores, likes)
    assert fitted.slope == pytest.approx(0.8, abs=0.02) and fitted.intercept == pytest.approx(-2.0, abs=0.04)
    assert fitted.probability(np.array([2.5]))[0] == pytest.approx(0.5, abs=0.01)


def test_search_widens_an_axis_while_its_best_value_is_at_an_end():
    """The measure peaks at a = 0.25 and b = 3: the grid a in {1, 2, 4} is stepped down twice (0.5, 0.25)
    and once more (0.125) to see the peak passed; b is inside its grid from the start."""

    def measure(setting):
        return -abs(np.log2(setting["a"]) + 2) - abs(setting["b"] - 3)

    tuned = search("test", {"a": [1.0, 2.0, 4.0], "b": [2, 3, 4]}, lambda s: s, measure, "m", True, widen=5)
    assert tuned.setting == {"a": 0.25, "b": 3}
    assert tuned.widened == {"a": [0.5, 0.25, 0.125]} and tuned.at_edge == []
    assert len(tuned.grid) == 9 + 3
    short = search("test", {"a": [1.0, 2.0, 4.0], "b": [3]}, lambda s: s, measure, "m", True, widen=1)
    assert (short.setting, short.at_edge) == ({"a": 0.5, "b": 3}, ["a"])
    ranks = search("test", {"rank": [32, 64]}, lambda s: s, lambda s: -s["rank"], "m", True, widen=2)
    assert ranks.widened == {"rank": [16, 8]}
    capped = search(
        "test", {"rank": [32, 64]}, lambda s: s, lambda s: s["rank"], "m", True, widen=3, limits={"rank": 128}
    )
    assert (capped.widened, capped.at_edge) == ({"rank": [128]}, ["rank"])
    short_of_it = search(
        "test", {"rank": [32, 64]}, lambda s: s, lambda s: s["rank"], "m", True, widen=3, limits={"rank": 100}
    )
    assert (short_of_it.widened, short_of_it.at_edge) == ({"rank": [100]}, ["rank"]), "the cap itself is tried"
    floor = search("test", {"alpha": [0.0, 1.0, 10.0]}, lambda s: s, lambda s: -s["alpha"], "m", True, 3)
    assert (floor.setting, floor.widened, floor.at_edge) == ({"alpha": 0.0}, {}, []), "nothing lies below 0"


def test_search_keeps_a_failed_fit_in_the_grid_and_fails_only_when_nothing_fits():
    def fit(setting):
        if setting["a"] == 2:
            raise FitFailed("no solution at 2")
        return setting

    tuned = search("test", {"a": [1, 2, 3]}, fit, lambda s: s["a"], "m", True, widen=0)
    assert tuned.setting == {"a": 3}
    assert tuned.grid[1] == {"a": 2, "validation": None, "failed": "no solution at 2"}
    with pytest.raises(FitFailed, match=r"no setting of its grid could be fitted \(no solution at 2\)"):
        search("test", {"a": [2]}, fit, lambda s: s["a"], "m", True, widen=2)


def test_missing_model_fails_with_one_line(evaluate_job, prepared_small, tmp_path):
    argv = ["--data", str(prepared_small), "--model", str(tmp_path / "nowhere"), "--output", str(tmp_path / "out")]
    with pytest.raises(ScoreError) as failure:
        evaluate_job.main(argv)
    assert "model.keras is missing" in str(failure.value) and "\n" not in str(failure.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("table", ["train", "test"])
def test_an_empty_split_is_named(evaluate_job, prepared_small, trained, tmp_path, table):
    data = emptied_copy(prepared_small, tmp_path / "prepared", table)
    before = tree_digest(tmp_path)
    argv = ["--data", str(data), "--model", str(trained), "--output", str(tmp_path / "out")]
    with pytest.raises(EvaluateError) as failure:
        evaluate_job.main(argv + settings(QUICK))
    assert str(failure.value) == f"{data}/{table} has no rows: nothing to evaluate"
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("k=0", "evaluate: k: expected a positive integer, got 0"),
        (
            "baselines=popular,knn",
            "evaluate: baselines: unknown ['knn'], expected some of "
            "['als_implicit', 'ease', 'popular', 'als', 'logistic']",
        ),
    ],
)
def test_bad_settings_fail_before_spark_with_one_line(tmp_path, setting, message):
    arguments = ["--data", str(tmp_path), "--model", str(tmp_path), "--output", str(tmp_path / "out")]
    result = run_job("evaluate", *arguments, "--set", setting, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == message
