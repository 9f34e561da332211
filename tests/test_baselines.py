"""The parts every baseline shares, on literal data: the validation carve-out, the
hyperparameter search and its widening, calibration, most-popular. No ALS, EASE or logistic
fits (tests/test_evaluate.py runs those through the job)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from sparkrec.core import columns as C
from sparkrec.evaluate import baselines
from sparkrec.evaluate.popular import fit_popular
from sparkrec.evaluate.tuning import FitFailed, RankingCarveOut, carve_validation, grid_of, search
from sparkrec.prepare import sampling
from sparkrec.score.scorers import top_k_lists

from helpers import frame

KEYS = "userId int, movieId int, timestamp long"
GRID = [(u, m, 1000 * u + m) for u in (1, 2, 3) for m in (10, 20, 30, 40)]


def many_ratings(spark):
    return frame(spark, KEYS, [(u, m, 7 * u + m) for u in range(1, 41) for m in range(1, 51)])


# --- the carve-out ---


def test_carve_validation_is_disjoint_complete_and_seeded(spark):
    train = frame(spark, KEYS, GRID)
    fit, validation = carve_validation(train, 0.45, 42)
    # Pinned: the same rows whatever the machine or Spark version, or tuned settings would not reproduce.
    carved = [(1, 10, 1010), (1, 30, 1030), (2, 10, 2010), (2, 20, 2020), (3, 20, 3020)]
    assertDataFrameEqual(validation, frame(spark, KEYS, carved))
    assertDataFrameEqual(fit, frame(spark, KEYS, [row for row in GRID if row not in carved]))
    _, other_seed = carve_validation(train, 0.45, 43)
    assert sorted(map(tuple, other_seed.collect())) != carved


@pytest.mark.parametrize("fraction, carved", [(0.0, 0), (1.0, 12)])
def test_carve_validation_fraction_bounds(spark, fraction, carved):
    fit, validation = carve_validation(frame(spark, KEYS, GRID), fraction, 42)
    assert (fit.count(), validation.count()) == (12 - carved, carved)


def test_carve_validation_takes_about_its_fraction_of_train_left_by_the_prepare_split(spark):
    """Same seed, same fraction as prepare's split: the timestamp in the carve-out's hash is what
    keeps it from being empty (train is exactly the rows whose (user, movie) hash is >= fraction)."""
    train = sampling.train_rows(sampling.split_random(many_ratings(spark), 0.2, 42))
    size = train.count()
    fit, validation = carve_validation(train, 0.2, 42)
    carved = validation.count()
    assert fit.count() + carved == size
    assert 0.2 * size - 3 * math.sqrt(size * 0.16) <= carved <= 0.2 * size + 3 * math.sqrt(size * 0.16)


# --- the search ---


def test_grid_of_varies_the_last_axis_fastest():
    assert grid_of(rank=[10, 30], reg_param=[0.1, 1.0]) == [
        {"rank": 10, "reg_param": 0.1},
        {"rank": 10, "reg_param": 1.0},
        {"rank": 30, "reg_param": 0.1},
        {"rank": 30, "reg_param": 1.0},
    ]
    assert grid_of(reg_param=[0.1]) == [{"reg_param": 0.1}]
    assert grid_of() == [{}]


class Recorder:
    """A model that is its setting; `fit` records the settings tried, `measure` is a function of them."""

    def __init__(self, value, fails=()):
        self.value, self.fails, self.tried = value, fails, []

    def fit(self, setting: dict) -> dict:
        self.tried.append(setting)
        if setting in self.fails:
            raise FitFailed("singular matrix")
        return setting

    def measure(self, model: dict) -> float:
        return self.value(model)


def run(recorder: Recorder, axes: dict, maximize: bool = True, widen: int = 0, limits: dict | None = None):
    return search("test", axes, recorder.fit, recorder.measure, "ndcg@10", maximize, widen, limits)


def test_search_fits_the_whole_grid_and_keeps_the_best():
    recorder = Recorder(lambda s: -abs(s["rank"] - 25) - s["reg"])
    tuned = run(recorder, {"rank": [10, 30], "reg": [0.1, 1.0]})
    assert recorder.tried == grid_of(rank=[10, 30], reg=[0.1, 1.0])
    assert tuned.setting == {"rank": 30, "reg": 0.1}
    assert tuned.model == {"rank": 30, "reg": 0.1}
    assert tuned.details() == {
        "chosen": {"rank": 30, "reg": 0.1},
        "grid": [
            {"rank": 10, "reg": 0.1, "validation": -15.1},
            {"rank": 10, "reg": 1.0, "validation": -16.0},
            {"rank": 30, "reg": 0.1, "validation": -5.1},
            {"rank": 30, "reg": 1.0, "validation": -6.0},
        ],
        "validation": "ndcg@10",
        "widened": {},
        # Nothing widened: both chosen values are an end of their axis.
        "at_edge": ["rank", "reg"],
    }


def test_search_minimizes_and_keeps_the_first_of_equal_values():
    tuned = run(Recorder(lambda s: abs(s["reg"] - 0.5)), {"reg": [0.25, 0.75, 0.5, 1.0]}, maximize=False)
    assert tuned.setting == {"reg": 0.5}
    tuned = run(Recorder(lambda s: 1.0), {"reg": [0.3, 0.1, 0.2]})
    assert tuned.setting == {"reg": 0.3}


def test_search_widens_an_integer_axis_on_its_geometric_step_at_the_others_best():
    recorder = Recorder(lambda s: -abs(s["rank"] - 100) - abs(s["reg"] - 0.2))
    tuned = run(recorder, {"rank": [10, 30], "reg": [0.1, 0.2, 0.4]}, widen=5)
    # 30 * 30 / 10 = 90, then 90 * 90 / 30 = 270: worse, and 90 is no longer an end.
    assert recorder.tried[6:] == [{"rank": 90, "reg": 0.2}, {"rank": 270, "reg": 0.2}]
    assert (tuned.setting, tuned.widened, tuned.at_edge) == ({"rank": 90, "reg": 0.2}, {"rank": [90, 270]}, [])


def test_search_widens_a_float_axis_downwards_to_round_values():
    recorder = Recorder(lambda s: -abs(math.log10(s["reg"]) + 3))
    tuned = run(recorder, {"reg": [0.01, 0.1]}, widen=5)
    # 0.01 * 0.01 / 0.1 is 0.0009999999999999998 in floating point: tried as 0.001.
    assert [s["reg"] for s in recorder.tried] == [0.01, 0.1, 0.001, 0.0001]
    assert (tuned.setting, tuned.widened, tuned.at_edge) == ({"reg": 0.001}, {"reg": [0.001, 0.0001]}, [])


def test_search_stops_an_integer_axis_at_1():
    recorder = Recorder(lambda s: -s["rank"])
    tuned = run(recorder, {"rank": [2, 4]}, widen=5)
    # round(2 * 2 / 4) = 1; past 1 there is nothing, and 1 is not reported as an edge to widen.
    assert [s["rank"] for s in recorder.tried] == [2, 4, 1]
    assert (tuned.setting, tuned.at_edge) == ({"rank": 1}, [])


def test_search_widens_no_further_than_its_budget():
    recorder = Recorder(lambda s: s["rank"])
    tuned = run(recorder, {"rank": [10, 30]}, widen=1)
    assert [s["rank"] for s in recorder.tried] == [10, 30, 90]
    assert (tuned.setting, tuned.widened, tuned.at_edge) == ({"rank": 90}, {"rank": [90]}, ["rank"])


def test_search_tries_the_limit_instead_of_a_step_past_it():
    recorder = Recorder(lambda s: s["rank"])
    tuned = run(recorder, {"rank": [10, 30]}, widen=5, limits={"rank": 50})
    assert [s["rank"] for s in recorder.tried] == [10, 30, 50]
    # At the limit: no further fit, but the axis is still named as at an edge.
    assert (tuned.setting, tuned.widened, tuned.at_edge) == ({"rank": 50}, {"rank": [50]}, ["rank"])


def test_search_keeps_a_setting_that_could_not_be_fitted_as_not_fitted():
    recorder = Recorder(lambda s: -s["reg"], fails=[{"reg": 0.01}])
    tuned = run(recorder, {"reg": [0.01, 0.1, 1.0]})
    assert tuned.setting == {"reg": 0.1}
    assert tuned.grid == [
        {"reg": 0.01, "validation": None, "failed": "singular matrix"},
        {"reg": 0.1, "validation": -0.1},
        {"reg": 1.0, "validation": -1.0},
    ]


def test_search_fails_when_no_setting_could_be_fitted():
    recorder = Recorder(lambda s: 0.0, fails=[{"reg": 0.1}, {"reg": 1.0}])
    with pytest.raises(FitFailed) as caught:
        run(recorder, {"reg": [0.1, 1.0]}, widen=3)
    assert str(caught.value) == "no setting of its grid could be fitted (singular matrix)"


# --- calibration ---


def test_calibration_recovers_the_like_rate_of_each_score():
    # At score -1 one like in four, at +1 three in four: logit -ln 3 and +ln 3.
    scores = np.array([-1.0] * 4 + [1.0] * 4)
    likes = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    calibration = baselines.Calibration.fit(scores, likes)
    # The 1e-6 ridge on the slope pulls it (and the rates) in by about 1e-6.
    assert calibration.slope == pytest.approx(math.log(3), abs=1e-5)
    assert calibration.intercept == pytest.approx(0.0, abs=1e-9)
    assert calibration.probability(np.array([-1.0, 0.0, 1.0])) == pytest.approx([0.25, 0.5, 0.75], abs=1e-5)


def test_calibration_of_a_constant_score_is_the_like_rate():
    calibration = baselines.Calibration.fit(np.full(4, 2.0), np.array([1, 0, 0, 0]))
    assert calibration.slope == 0.0
    assert calibration.probability(np.array([2.0, -5.0])) == pytest.approx([0.25, 0.25])


def test_calibration_stays_finite_on_separable_scores():
    calibration = baselines.Calibration.fit(np.array([0.0, 0.0, 1.0, 1.0]), np.array([0, 0, 1, 1]))
    assert math.isfinite(calibration.slope) and math.isfinite(calibration.intercept)
    low, high = calibration.probability(np.array([0.0, 1.0]))
    assert low < 0.01 and high > 0.99


# --- most popular ---

CATALOGUE = pd.DataFrame({C.MOVIE_ID: np.array([10, 20, 30, 40, 50], dtype=np.int32)})
# Likes per movie: 10: 3 of 4, 20: 3 of 3, 30: 1 of 2, 40: 0 of 1, 50: never rated. Global rate 7 / 10.
TRAIN = [
    (1, 10, 1),
    (2, 10, 1),
    (3, 10, 1),
    (4, 10, 0),
    (1, 20, 1),
    (2, 20, 1),
    (3, 20, 1),
    (1, 30, 1),
    (2, 30, 0),
    (3, 40, 0),
]


@pytest.fixture(scope="module")
def popular(spark):
    return fit_popular(frame(spark, "userId int, movieId int, like int", TRAIN), CATALOGUE, prior=2.0)


def test_popular_like_rate_is_shrunk_towards_the_global_rate(spark, popular):
    # (likes + prior x 0.7) / (ratings + prior), prior = 2
    expected = frame(
        spark, "movieId int, like_probability double", [(10, 4.4 / 6), (20, 4.4 / 5), (30, 2.4 / 4), (40, 1.4 / 3)]
    )
    assertDataFrameEqual(popular.stats, expected)
    assert popular.global_rate == pytest.approx(0.7)
    assert popular.details() == {"train_like_rate": popular.global_rate}


def test_popular_scores_every_user_by_catalogue_like_count(popular):
    np.testing.assert_array_equal(popular.scores(np.array([0, 7])), [[3, 3, 1, 0, 0], [3, 3, 1, 0, 0]])


def test_popular_ranks_by_like_count_ties_by_movie_id_watched_never(popular):
    users = pd.DataFrame(
        {
            C.USER_ID: [1, 2, 3],
            C.USER_IDX: [1, 2, 3],
            C.WATCHED: [[10], [], [20, 30]],
        }
    )
    lists = top_k_lists(popular, users, 3, block=2)
    assert {user: ranked.tolist() for user, ranked in lists.items()} == {
        1: [20, 30, 40],
        2: [10, 20, 30],
        3: [10, 40, 50],
    }


def test_popular_classifies_by_its_like_rate_and_an_unrated_movie_by_the_global_rate(spark, popular):
    rows = frame(spark, "userId int, movieId int, rating double", [(5, 10, 4.0), (5, 40, 1.0), (6, 50, 3.0)])
    result = popular.classify(rows).sort_values([C.USER_ID, C.MOVIE_ID]).reset_index(drop=True)
    expected = pd.DataFrame(
        {
            C.USER_ID: np.array([5, 5, 6], dtype=np.int32),
            C.MOVIE_ID: np.array([10, 40, 50], dtype=np.int32),
            baselines.PROBABILITY: [4.4 / 6, 1.4 / 3, 0.7],
            baselines.PREDICTED: np.array([1, 0, 1], dtype=np.int32),
        }
    )
    pd.testing.assert_frame_equal(result, expected)


def test_ranking_carve_out_measures_mean_ndcg_over_users_with_a_relevant_movie(spark, popular):
    users = pd.DataFrame({C.USER_ID: [1, 2, 3], C.USER_IDX: [1, 2, 3], C.WATCHED: [[10], [], [20, 30]]})
    carve_out = RankingCarveOut(
        fit=frame(spark, "userId int, movieId int, like int", TRAIN),
        validation=pd.DataFrame(),
        users=users,
        relevant={1: {30}, 2: {20, 50}, 3: set()},
        k=2,
        block=2,
    )
    # Top 2: user 1 [20, 30] hits at rank 2 of one relevant; user 2 [10, 20] at rank 2 of two; user 3 has none.
    at_2 = 1 / math.log2(3)
    assert carve_out.ndcg(popular) == pytest.approx((at_2 / 1 + at_2 / (1 + at_2)) / 2)
    assert carve_out.measure == "ndcg@2"


def test_classified_is_the_keys_probability_and_decision(spark):
    scored = frame(spark, "userId int, movieId int, p float, extra string", [(1, 10, 0.75, "x"), (2, 20, 0.25, "y")])
    result = baselines.classified(scored, F.col("p"), F.col("p") >= 0.5)
    expected = pd.DataFrame(
        {
            C.USER_ID: np.array([1, 2], dtype=np.int32),
            C.MOVIE_ID: np.array([10, 20], dtype=np.int32),
            baselines.PROBABILITY: [0.75, 0.25],
            baselines.PREDICTED: np.array([1, 0], dtype=np.int32),
        }
    )
    pd.testing.assert_frame_equal(result, expected)
