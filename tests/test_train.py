"""jobs/train.py on prepare's output for ml-latest-small: outputs, reproducibility, resume, bad inputs.

Runs are kept tiny (a small deep model, two epochs at batch 1024) so the file
stays well under three minutes on two cores; quality is measured in docs/results.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sparkrec.core import columns as C
from sparkrec.core import metrics
from sparkrec.core.config import ConfigError
from sparkrec.models import pairwise as M
from sparkrec.models import saved
from sparkrec.train import callbacks, fitting
from sparkrec.train import dataset as dataset_module
from sparkrec.train import stages as training
from sparkrec.train.config import TrainConfig
from sparkrec.train.dataset import DataError, Feed, Holdout, open_prepared, read_frame, shuffle_buffered
from sparkrec.train.negatives import NegativeSampler, pair_keys, popularity_cdf, read_catalogue, sampling_offsets
from sparkrec.train.pairtrain import feed_arrays, make_feeds, predict, undo_sampling_bias

from helpers import ROOT, load_job, tiny_train, tree_digest

training.configure_runtime(TrainConfig(intra_op_threads=2, inter_op_threads=1))
# pytest resets warning filters per test; dataset.py's filter for this petastorm advice does not reach here.
pytestmark = pytest.mark.filterwarnings("ignore:Please use make_reader:UserWarning")


@pytest.fixture(scope="module")
def train_job():
    return load_job("train")


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def without_timings(history: list[dict]) -> list[dict]:
    return [{key: value for key, value in entry.items() if key != "rows_per_s"} for entry in history]


def test_training_beats_the_majority_baseline_and_writes_every_output(trained, prepared_small):
    document = read_json(trained / "metrics.json")
    like = document["test"][M.LIKE_OUTPUT]
    manifest = read_json(prepared_small / "manifest.json")
    assert like["rows"] == manifest["rows"]["test"]
    assert document["rows"]["train"] + document["rows"]["validation"] == manifest["rows"]["train"]
    assert like["accuracy"] > document["test"]["baselines"]["majority_accuracy"] + 0.05
    assert 0 < document["test"][M.RATING_OUTPUT]["rmse"] < 1.2
    assert [entry["epoch"] for entry in document["history"]] == [0, 1]
    assert all(entry["rows_per_s"] > 0 and "test_like_accuracy" in entry for entry in document["history"])
    kept = document["history"][document["best_epoch"] - 1]
    assert kept["test_like_accuracy"] == pytest.approx(like["accuracy"], abs=1e-6), (
        "the saved weights are the ones measured at the kept epoch: the averaged ones, not the raw ones"
    )

    model = saved.load(trained / "model.keras")
    assert model.output_names == [M.LIKE_OUTPUT, M.RANK_OUTPUT, M.RATING_OUTPUT]
    assert model.count_params() == read_json(trained / "run.json")["parameters"]
    assert read_json(trained / "vocab_sizes.json") == manifest["vocab_sizes"]
    assert sorted(p.name for p in (trained / "vocab").iterdir()) == ["genre", "movie", "tag", "user", "year"]
    assert set(read_json(trained / "importance.json")["inputs"]) == set(M.DEEP_INPUTS)
    assert (trained / "figures" / "training.png").stat().st_size > 10_000
    assert (trained / "figures" / "importance.png").stat().st_size > 10_000
    assert list((trained / "logs" / "train").glob("events.out.tfevents.*"))
    run = read_json(trained / "run.json")
    assert run["config"]["model"] == "deep" and run["config"]["batch_size"] == 1024 and run["seed"] == 42
    assert {"tensorflow-cpu", "keras", "petastorm"} <= set(run["versions"])
    siblings = sorted(p.name for p in trained.parent.iterdir())
    assert siblings == ["model"], "staging and backup directories are gone after success"


def test_the_saved_model_is_the_one_validated_at_the_kept_epoch(trained, prepared_small):
    """Validation sees the averaged weights (the deep preset averages them): so must the saved model."""
    document = read_json(trained / "metrics.json")
    kept = document["history"][document["best_epoch"] - 1]
    config = TrainConfig(**read_json(trained / "run.json")["config"])
    assert config.ema_momentum == 0.99
    model = saved.load(trained / "model.keras")
    x, y = feed_arrays(make_feeds(open_prepared(prepared_small), model, config).validation)
    predicted = predict(model, x, config.eval_batch_size)[M.LIKE_OUTPUT]
    assert metrics.accuracy(y[C.LIKE], predicted) == pytest.approx(kept["val_like_accuracy"], abs=1e-6)


def test_a_second_run_reproduces_the_metrics_exactly(trained, train_job, prepared_small, tmp_path):
    again = tmp_path / "again"
    tiny_train(train_job, prepared_small, again)
    first, second = read_json(trained / "metrics.json"), read_json(again / "metrics.json")
    assert second["test"] == first["test"]
    assert without_timings(second["history"]) == without_timings(first["history"])


class Interrupt(RuntimeError):
    pass


def test_a_killed_run_resumes_from_its_last_epoch_and_keeps_the_previous_model(
    trained, train_job, prepared_small, tmp_path, monkeypatch
):
    output = tmp_path / "model"
    shutil.copytree(trained, output)
    previous = (output / "metrics.json").read_text()

    class DiesInSecondEpoch(callbacks.RowsPerSecond):
        def on_train_batch_end(self, batch, logs=None):
            super().on_train_batch_end(batch, logs)
            if self.model.optimizer.iterations.numpy() > self.params["steps"] + 5:
                raise Interrupt("killed")

    monkeypatch.setattr(fitting, "RowsPerSecond", DiesInSecondEpoch)
    with pytest.raises(Interrupt):
        tiny_train(train_job, prepared_small, output)
    assert (output / "metrics.json").read_text() == previous, "a failed run leaves the previous model untouched"
    backup = training.backup_path(output)
    assert callbacks.resumed_epoch(backup) == 1
    assert [e["epoch"] for e in read_json(backup / "state.json")["history"]] == [0]

    monkeypatch.undo()
    resumed = tiny_train(train_job, prepared_small, output)
    uninterrupted = read_json(trained / "metrics.json")
    assert [e["epoch"] for e in resumed["history"]] == [0, 1]
    assert without_timings(resumed["history"]) == without_timings(uninterrupted["history"])
    assert resumed["test"] == uninterrupted["test"], "the resumed run is the uninterrupted run"
    assert not backup.exists()


def test_paper_model_trains_with_test_as_validation(train_job, prepared_small, tmp_path):
    document = tiny_train(
        train_job,
        prepared_small,
        tmp_path / "paper",
        "--set",
        "model=paper",
        "--set",
        "epochs=1",
        "--set",
        "batch_size=1024",
        "--set",
        "validation_fraction=0",
    )
    assert document["rows"]["validation"] == document["rows"]["test"]
    assert document["monitor"] == "val_auc"
    assert set(document["test"]) == {M.LIKE_OUTPUT, "baselines"}
    assert document["test"][M.LIKE_OUTPUT]["accuracy"] > document["test"]["baselines"]["majority_accuracy"]


# ----------------------------------------------------------------- the feed


def split_keys(prepared: Path, split: str) -> set[tuple[int, int]]:
    table = pq.read_table(prepared / split, columns=[C.USER_IDX, C.MOVIE_IDX])
    return set(zip(table[C.USER_IDX].to_pylist(), table[C.MOVIE_IDX].to_pylist()))


def keys_of(feed: Feed, epoch: int) -> list[tuple[int, int]]:
    keys = []
    for x, _ in feed.batches(epoch):
        keys += list(zip(x[C.USER_IDX][:, 0].tolist(), x[C.MOVIE_IDX][:, 0].tolist()))
    return keys


def test_feed_serves_each_row_once_per_epoch_in_a_seeded_order(prepared_small):
    inputs = {name: (M.INPUT_COLUMNS[name], "int32") for name in (C.USER_IDX, C.MOVIE_IDX)}
    feed = Feed(prepared_small / "train", inputs, {C.LIKE: C.LIKE}, batch_size=1000, shuffle_seed=3, buffer_rows=30_000)
    first, again, second = keys_of(feed, 0), keys_of(feed, 0), keys_of(feed, 1)
    everything = split_keys(prepared_small, "train")
    assert len(first) == len(everything) and set(first) == everything
    assert first == again and first != second and set(second) == everything


def test_the_tf_data_pipeline_yields_exactly_the_feeds_batches_with_negatives_and_a_short_last_batch(
    prepared_small,
):
    """The pipeline hands tf.data blocks of batches and cuts them apart again: nothing may move across a batch."""
    catalogue = read_catalogue(prepared_small / "movies", {C.MOVIE_IDX: ((C.MOVIE_IDX,), "int32")})
    sampler = NegativeSampler(catalogue=catalogue, per_row=2, seed=1, output=M.LIKE_OUTPUT)
    inputs = {C.USER_IDX: ((C.USER_IDX,), "int32"), C.MOVIE_IDX: ((C.MOVIE_IDX,), "int32")}
    feed = Feed(
        prepared_small / "train",
        inputs,
        {M.LIKE_OUTPUT: C.LIKE},
        batch_size=700,
        shuffle_seed=3,
        buffer_rows=30_000,
        negatives=sampler,
    )
    rows = open_prepared(prepared_small).rows["train"]
    assert rows % 700 and rows // 700 > 2 * dataset_module.BLOCK_BATCHES
    for epoch in (1, 2):
        expected = list(feed.batches(epoch))
        got = list(feed.dataset(rows, first_epoch=epoch, epochs=epoch + 1).as_numpy_iterator())
        assert len(got) == len(expected) == -(-rows // 700)
        assert len(got[-1][0][C.USER_IDX]) == 3 * (rows % 700)
        for batch, want in zip(got, expected):
            for part, wanted in zip(batch, want):
                assert part.keys() == wanted.keys()
                for name in wanted:
                    np.testing.assert_array_equal(part[name], wanted[name])


def test_read_frame_concatenates_a_directorys_parquet_files_in_name_order(tmp_path):
    pd.DataFrame({"a": [3, 4], "b": [0.5, 1.5]}).to_parquet(tmp_path / "part-1.parquet")
    pd.DataFrame({"a": [1, 2], "b": [2.5, 3.5]}).to_parquet(tmp_path / "part-0.parquet")
    (tmp_path / "_SUCCESS").write_text("")
    frame = read_frame(tmp_path, ("a",))
    assert list(frame.columns) == ["a"] and frame["a"].tolist() == [1, 2, 3, 4]
    assert frame.index.tolist() == [0, 1, 2, 3]
    assert read_frame(tmp_path)["b"].tolist() == [2.5, 3.5, 0.5, 1.5]
    with pytest.raises(DataError, match=f"no Parquet files in {tmp_path / 'empty'}"):
        read_frame(tmp_path / "empty")


def test_holdout_splits_train_disjointly_by_a_stable_hash(prepared_small):
    holdout = Holdout(0.05, seed=42)
    inputs = {C.USER_IDX: ((C.USER_IDX,), "int32"), C.MOVIE_IDX: ((C.MOVIE_IDX,), "int32")}
    train = prepared_small / "train"
    kept = keys_of(Feed(train, inputs, {}, 4096, holdout=holdout), 0)
    held = keys_of(Feed(train, inputs, {}, 4096, holdout=holdout, keep_holdout=True), 0)
    assert not set(kept) & set(held)
    assert set(kept) | set(held) == split_keys(prepared_small, "train")
    assert len(held) == holdout.count(prepared_small / "train")
    assert 0.04 < len(held) / (len(kept) + len(held)) < 0.06


SAMPLER = NegativeSampler(
    catalogue={C.MOVIE_IDX: np.arange(10, 20).reshape(-1, 1), M.GENRE_FLAGS: np.arange(20.0).reshape(10, 2)},
    per_row=2,
    seed=5,
    output=M.RANK_OUTPUT,
)


def rated_batch() -> tuple[dict, dict]:
    x = {
        C.USER_IDX: np.array([[1], [2], [3]]),
        C.MOVIE_IDX: np.array([[11], [12], [13]]),
        M.GENRE_FLAGS: np.array([[2.0, 3.0], [4.0, 5.0], [6.0, 7.0]]),
    }
    like = np.array([[1.0], [0.0], [1.0]], np.float32)
    return x, {M.LIKE_OUTPUT: like, M.RATING_OUTPUT: np.array([[4.0], [2.0], [5.0]], np.float32), M.RANK_OUTPUT: like}


def test_negative_sampler_appends_weighted_catalogue_pairs_of_the_batch_users():
    x, y = rated_batch()
    inputs, targets, weights = SAMPLER.augment(x, y, epoch=1, batch=5)
    assert all(values.shape[0] == 9 for values in (*inputs.values(), *targets.values(), *weights.values()))
    for name in x:
        np.testing.assert_array_equal(inputs[name][:3], x[name])
    np.testing.assert_array_equal(inputs[C.USER_IDX][3:, 0], [1, 2, 3, 1, 2, 3])
    picks = inputs[C.MOVIE_IDX][3:, 0] - 10
    assert set(picks) <= set(range(10))
    np.testing.assert_array_equal(inputs[M.GENRE_FLAGS][3:], SAMPLER.catalogue[M.GENRE_FLAGS][picks])
    np.testing.assert_array_equal(targets[M.RANK_OUTPUT][:, 0], [1, 0, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(targets[M.RATING_OUTPUT][:3], y[M.RATING_OUTPUT])
    np.testing.assert_array_equal(weights[M.RANK_OUTPUT], np.ones(9))
    for name in (M.LIKE_OUTPUT, M.RATING_OUTPUT):
        np.testing.assert_array_equal(weights[name], [3, 3, 3, 0, 0, 0, 0, 0, 0])


def sampled_movies(epoch: int, batch: int) -> list[int]:
    x, y = rated_batch()
    return SAMPLER.augment(x, y, epoch, batch)[0][C.MOVIE_IDX][3:, 0].tolist()


def test_negative_sampler_draws_are_seeded_by_epoch_and_batch():
    assert sampled_movies(1, 5) == sampled_movies(1, 5)
    assert sampled_movies(1, 5) != sampled_movies(1, 6) and sampled_movies(1, 5) != sampled_movies(2, 5)


def test_negative_sampler_redraws_movies_the_user_rated():
    x, y = rated_batch()
    rated = np.sort(pair_keys(np.repeat([1, 2], 5), np.arange(10, 20)))
    sampler = dataclasses.replace(SAMPLER, per_row=20, rated=rated)
    inputs = sampler.augment(x, y, epoch=0, batch=0)[0]
    users, movies = inputs[C.USER_IDX][3:, 0], inputs[C.MOVIE_IDX][3:, 0]
    assert set(movies[users == 1]) == set(range(15, 20)) and set(movies[users == 2]) == set(range(10, 15))
    assert len(set(movies[users == 3])) > 5


def test_popularity_cdf_weighs_rows_by_smoothed_rating_counts():
    np.testing.assert_allclose(popularity_cdf(np.array([0, 1, 3]), 1.0), [1 / 7, 3 / 7, 1])
    np.testing.assert_allclose(popularity_cdf(np.array([0, 8, 3]), 0.5), [1 / 6, 4 / 6, 1])
    np.testing.assert_allclose(popularity_cdf(np.array([0, 1, 3]), 0.0), [1 / 3, 2 / 3, 1])


def test_negative_sampler_with_a_cdf_draws_only_rows_that_carry_probability():
    x, y = rated_batch()
    cdf = np.array([0, 0, 0, 0.25, 0.25, 0.25, 0.25, 1, 1, 1])
    picks = dataclasses.replace(SAMPLER, per_row=400, cdf=cdf).augment(x, y, 0, 0)[0][C.MOVIE_IDX][3:, 0] - 10
    assert set(picks) == {3, 7}
    # 1,200 draws with P(row 3) = 0.25: five standard deviations is 0.0625.
    assert abs(np.mean(picks == 3) - 0.25) < 0.0625


def test_sampling_offsets_are_log_probabilities_relative_to_uniform_per_movie_index():
    # Catalogue rows 0-3 are movie indices 2, 0, 1, 0 (two movies outside the vocabulary); q = 6, 1, 3, 1 / 11.
    cdf = popularity_cdf(np.array([5, 0, 2, 0]), 1.0)
    offsets = sampling_offsets(cdf, np.array([2, 0, 1, 0]), vocab_size=5)
    np.testing.assert_allclose(offsets, [np.log(4 / 11), np.log(12 / 11), np.log(24 / 11), 0, 0])


def test_undoing_the_sampling_bias_shifts_the_rank_logit_by_the_movie_offset():
    vocab = {"user": 3, "movie": 4, "genre": 2, "year": 2, "tag": 2}
    model = M.build_deep_model(vocab, embedding_dim=4, hidden_units=(8,), rank_weight=1.0, rank_bias=True)
    x = {
        name: np.zeros((4, len(M.INPUT_COLUMNS[name])), "float32" if name == M.GENRE_FLAGS else "int32")
        for name in M.DEEP_INPUTS
    }
    x[C.MOVIE_IDX][:, 0] = [0, 1, 2, 3]

    def rank_logit() -> np.ndarray:
        p = predict(model, x, 4)[M.RANK_OUTPUT].astype(np.float64)
        return np.log(p / (1 - p))

    before = rank_logit()
    cdf = popularity_cdf(np.array([0, 4, 1, 0, 9]), 1.0)
    sampler = NegativeSampler({C.MOVIE_IDX: np.array([[0], [1], [2], [0], [3]])}, 1, 0, M.RANK_OUTPUT, cdf=cdf)
    undo_sampling_bias(model, sampler, movie_vocab=4)
    np.testing.assert_allclose(rank_logit() - before, np.log(np.array([1, 5, 2, 10]) / 19 * 5), atol=1e-4)


def test_popularity_negatives_need_the_rank_bias():
    with pytest.raises(ConfigError, match="negative_popularity needs rank_bias"):
        TrainConfig(negative_popularity=0.5, rank_bias=False).validate()


def test_weight_averaging_is_the_deep_preset_and_stays_below_one():
    assert TrainConfig().resolved().ema_momentum == 0.99
    assert TrainConfig(model="paper").resolved().ema_momentum == 0.0
    with pytest.raises(ConfigError, match=r"ema_momentum must be in \[0, 1\)"):
        TrainConfig(ema_momentum=1.0).validate()


def test_catalogue_holds_every_movie_side_input_of_every_catalogue_movie(prepared_small):
    inputs = {name: (M.INPUT_COLUMNS[name], "float32" if name == M.GENRE_FLAGS else "int32") for name in M.DEEP_INPUTS}
    catalogue = read_catalogue(prepared_small / "movies", inputs)
    movies = pq.read_table(prepared_small / "movies").to_pandas()
    assert set(catalogue) == set(M.DEEP_INPUTS) - {C.USER_IDX}
    assert catalogue[M.TAG_IDX].shape == (len(movies), 3) and catalogue[M.GENRE_FLAGS].dtype == np.float32
    np.testing.assert_array_equal(catalogue[C.MOVIE_IDX][:, 0], movies[C.MOVIE_IDX])
    np.testing.assert_array_equal(catalogue[M.GENRE_FLAGS], movies[list(C.GENRE_FLAG_COLUMNS)].to_numpy())


def test_shuffle_buffer_bounds_the_rows_held_at_once():
    chunks = ({"a": np.arange(start, start + 700)} for start in range(0, 7000, 700))
    emitted = list(shuffle_buffered(chunks, buffer_rows=2000, rng=np.random.default_rng(0)))
    assert max(len(chunk["a"]) for chunk in emitted) <= 2000 + 700
    assert sorted(np.concatenate([chunk["a"] for chunk in emitted])) == list(range(7000))


# ----------------------------------------------------------------- bad inputs


def damaged_copy(prepared: Path, target: Path) -> Path:
    shutil.copytree(prepared, target, ignore=shutil.ignore_patterns("interactions", "figures", "quarantine"))
    return target


def shrink_user_vocabulary(data: Path) -> str:
    manifest = read_json(data / "manifest.json")
    manifest["vocab_sizes"]["user"] -= 1
    (data / "manifest.json").write_text(json.dumps(manifest))
    return "user_idx spans 1..610 but the manifest's 'user' vocabulary has 610 entries"


def remove_manifest(data: Path) -> str:
    (data / "manifest.json").unlink()
    return "manifest.json is missing"


def empty_test_split(data: Path) -> str:
    files = sorted((data / "test").glob("*.parquet"))
    empty = pq.read_table(files[0]).slice(0, 0)
    for path in files:
        path.unlink()
    pq.write_table(empty, data / "test" / "part-00000.parquet")
    return "split test/ under"


@pytest.mark.parametrize("damage", [shrink_user_vocabulary, remove_manifest, empty_test_split])
def test_bad_prepared_data_is_refused_with_one_line(damage, prepared_small, tmp_path):
    data = damaged_copy(prepared_small, tmp_path / "data")
    expected = damage(data)
    with pytest.raises(DataError) as caught:
        open_prepared(data)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_an_empty_validation_holdout_is_named_before_training(train_job, prepared_small, tmp_path):
    before = tree_digest(tmp_path)
    with pytest.raises(DataError) as failure:
        tiny_train(train_job, prepared_small, tmp_path / "model", "--set", "validation_fraction=0.000001")
    assert str(failure.value) == (
        f"{prepared_small}/train: validation_fraction=1e-06 leaves its validation side empty; "
        "change validation_fraction (0 validates on test)"
    )
    assert tree_digest(tmp_path) == before


def test_the_job_exits_non_zero_with_a_one_line_reason(tmp_path):
    missing = tmp_path / "nowhere"
    result = subprocess.run(
        [sys.executable, str(ROOT / "jobs" / "train.py"), "--data", str(missing), "--output", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"train: no prepared dataset at {missing}"
    assert not (tmp_path / "out").exists()
