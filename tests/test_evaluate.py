"""Evaluation: ranking metrics on hand-computed lists, baselines on ml-latest-small, the evaluate job."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparkrec import ranking

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


def test_top_k_skips_excluded_and_breaks_ties_by_column():
    scores = np.array([[0.5, 0.9, 0.5, 0.1], [1.0, 1.0, 1.0, 1.0]])
    excluded = np.array([[False, True, False, False], [True, True, True, False]])
    positions = ranking.top_k(scores, excluded, 3)
    assert positions.tolist() == [[0, 2, 3], [3, -1, -1]]
    items = np.array([10, 20, 30, 40])
    assert [r.tolist() for r in ranking.ranked_items(positions, items)] == [[10, 30, 40], [40]]
