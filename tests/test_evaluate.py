"""Evaluation: ranking metrics on hand-computed lists, baselines on ml-latest-small, the evaluate job."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sparkrec import baselines, evaluation, ranking
from sparkrec import columns as C
from sparkrec.config import load_config
from sparkrec.scoring import ScoreError

from conftest import ROOT, TINY_TRAIN, emptied_copy, load_job, tree_digest

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
    "logistic_reg_params": "0.001",
    "logistic_max_iter": "15",
}
MODELS = ("deep", "popular", "als", "logistic")


def quick_config(**overrides) -> evaluation.EvaluateConfig:
    return load_config(evaluation.EvaluateConfig, None, {**QUICK, **overrides})


def settings(values: dict) -> list[str]:
    return [part for key, value in values.items() for part in ("--set", f"{key}={value}")]


@pytest.fixture(scope="module")
def small_model(prepared_small, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("evaluate-model") / "model"
    load_job("train").main(["--data", str(prepared_small), "--output", str(output), *TINY_TRAIN])
    return output


@pytest.fixture(scope="module")
def evaluate_job():
    return load_job("evaluate")


@pytest.fixture(scope="module")
def evaluated(evaluate_job, prepared_small, small_model, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("evaluation") / "out"
    argv = ["--data", str(prepared_small), "--model", str(small_model), "--output", str(output)]
    evaluate_job.main(argv + settings(QUICK))
    return output


@pytest.fixture(scope="module")
def data(spark, prepared_small) -> evaluation.EvalData:
    """The split as evaluated for a seeded sample of 120 users."""
    return evaluation.load_data(spark, str(prepared_small), quick_config(eval_users="120"))


def read_split(prepared: Path, split: str) -> pd.DataFrame:
    return pd.read_parquet(prepared / split, columns=[C.USER_ID, C.MOVIE_ID, C.LIKE])


def test_job_writes_report_metrics_and_chart(evaluated, prepared_small, small_model):
    document = json.loads((evaluated / evaluation.METRICS).read_text())
    assert list(document["models"]) == list(MODELS)
    assert document["config"]["k"] == 10 and document["config"]["als_ranks"] == [5]
    assert document["prepare_config"]["like_threshold"] == 3.5
    assert {"pyspark", "numpy", "keras", "spark"} <= set(document["versions"])
    assert document["model"] == str(small_model) and document["data"] == str(prepared_small)
    # Every user with a test rating is evaluated: the deep model's numbers are the trainer's own.
    trained = json.loads((small_model / "metrics.json").read_text())["test"]["like"]
    ours = document["models"]["deep"]["classification"]
    for metric in ("rows", "accuracy", "precision", "recall", "f1"):
        assert ours[metric] == trained[metric], metric
    for metric in ("auc", "log_loss"):
        assert ours[metric] == pytest.approx(trained[metric], abs=1e-6), metric
    # Classification reads the like head; the lists come from the rank head the scorer picks.
    assert document["models"]["deep"]["details"]["ranking_output"] == "rank"
    report = (evaluated / evaluation.REPORT).read_text()
    assert "classifies with its `like` output, ranks with its `rank` output" in report
    for name in MODELS:
        assert report.count(f"| {name} |") == 2  # one row in each table
    for name in MODELS[1:]:
        assert f"- vs {name}: accuracy" in report
    assert (evaluated / evaluation.CHART).stat().st_size > 10_000
    assert not Path(f"{evaluated}.staging").exists()


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
    for name, result in document["models"].items():
        classified, ranked = result["classification"], result["ranking"]
        assert classified["rows"] == len(test)
        assert 0.5 < classified["auc"] < 1 and 0 < classified["log_loss"] < 1, name
        popularity = ranked.pop(f"{evaluation.LISTED_POPULARITY}@10")
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
    fit_part, validation = baselines.carve_validation(data.train, 0.1, 42)
    n_fit, n_validation, n_train = fit_part.count(), validation.count(), data.train.count()
    assert n_fit + n_validation == n_train
    assert 0.08 < n_validation / n_train < 0.12


def test_popular_lists_are_the_most_liked_unwatched_movies(data, prepared_small):
    popular = baselines.fit_popular(data.train, data.catalogue, prior=2.0)
    users = data.users.head(6)
    lists = evaluation.top_k_lists(popular, users, 10, block=4)
    train = read_split(prepared_small, "train")
    likes = train.groupby(C.MOVIE_ID)[C.LIKE].sum().reindex(data.catalogue[C.MOVIE_ID], fill_value=0)
    ordered = likes.reset_index().sort_values([C.LIKE, C.MOVIE_ID], ascending=[False, True])[C.MOVIE_ID]
    for user in users[C.USER_ID]:
        watched = set(train.loc[train[C.USER_ID] == user, C.MOVIE_ID])
        expected = [movie for movie in ordered if movie not in watched][:10]
        assert lists[user].tolist() == expected


def test_logistic_scores_are_its_spark_probabilities(spark, data):
    logistic = baselines.fit_logistic(spark, data.train, data.catalogue, data.vocab_sizes, [1e-3], 10, 0.1, 42)
    classified = logistic.classify(data.test).merge(
        data.test.select(C.USER_ID, C.MOVIE_ID, C.USER_IDX).toPandas(), on=[C.USER_ID, C.MOVIE_ID]
    )
    row = pd.Series(np.arange(len(data.catalogue)), index=data.catalogue[C.MOVIE_ID].to_numpy())
    logits = logistic.user_terms[classified[C.USER_IDX]] + logistic.movie_terms[row[classified[C.MOVIE_ID]].to_numpy()]
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), classified[baselines.PROBABILITY], rtol=1e-9)


def test_missing_model_fails_with_one_line(evaluate_job, prepared_small, tmp_path):
    argv = ["--data", str(prepared_small), "--model", str(tmp_path / "nowhere"), "--output", str(tmp_path / "out")]
    with pytest.raises(ScoreError) as failure:
        evaluate_job.main(argv)
    assert "model.keras is missing" in str(failure.value) and "\n" not in str(failure.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("table", ["train", "test"])
def test_an_empty_split_is_named(evaluate_job, prepared_small, small_model, tmp_path, table):
    data = emptied_copy(prepared_small, tmp_path / "prepared", table)
    before = tree_digest(tmp_path)
    argv = ["--data", str(data), "--model", str(small_model), "--output", str(tmp_path / "out")]
    with pytest.raises(evaluation.EvaluateError) as failure:
        evaluate_job.main(argv + settings(QUICK))
    assert str(failure.value) == f"{data}/{table} has no rows: nothing to evaluate"
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize(("setting", "message"), [
    ("k=0", "evaluate: k: expected a positive integer, got 0"),
    ("baselines=popular,knn", "evaluate: baselines: unknown ['knn'], expected some of ['popular', 'als', 'logistic']"),
])
def test_bad_settings_fail_before_spark_with_one_line(tmp_path, setting, message):
    command = [sys.executable, str(ROOT / "jobs" / "evaluate.py"), "--data", str(tmp_path), "--model", str(tmp_path),
               "--output", str(tmp_path / "out"), "--set", setting]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == message
