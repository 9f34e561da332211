"""The scoring job on ml-latest-small: exactness of the fast path, top-K rules, users=all, bad inputs.

Models are built with sparkrec.models.pairwise and random weights (scoring does not
care whether they were trained) and saved in the training job's layout.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sparkrec.core import columns as C
from sparkrec.core.ops import apply
from sparkrec.core.topk import top_k
from sparkrec.score.config import MODEL_FILE, ScoreError
from sparkrec.score.factorize import factorize
from sparkrec.score.keras_io import catalogue_inputs, load_keras_model, output_for, scored_model
from sparkrec.score.kernels import kernel_for
from sparkrec.score.scorers import FastScorer, recommend_batch

from helpers import emptied_copy, load_job, run_job, tree_digest

TOLERANCE = 1e-5


# --- fixtures: models, a smaller world, job runs ------------------------------


def randomize_biases(model, seed: int) -> None:
    """Give every bias (Dense biases, bias embeddings) random values so the fast path must fold them."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if "bias_" in layer.name or getattr(layer, "use_bias", False):
            weights = layer.get_weights()
            weights[-1] = rng.normal(0, 0.3, weights[-1].shape).astype("float32")
            layer.set_weights(weights)


def save_model_dir(model, directory: Path, vocab_from: Path | None) -> Path:
    """MODEL_DIR as the training job writes it: model.keras and (optionally) the vocabularies it used."""
    directory.mkdir(parents=True)
    model.save(directory / MODEL_FILE)
    if vocab_from is not None:
        shutil.copytree(vocab_from / "vocab", directory / "vocab")
    return directory


def vocab_sizes(prepared: Path) -> dict[str, int]:
    return json.loads((prepared / "manifest.json").read_text())["vocab_sizes"]


def paper_model(sizes: dict[str, int]):
    import keras

    from sparkrec.models import pairwise as model

    keras.utils.set_random_seed(7)
    built = model.build_paper_model(sizes)
    randomize_biases(built, 7)
    return built


def deep_model(sizes: dict[str, int]):
    import keras

    from sparkrec.models import pairwise as model

    keras.utils.set_random_seed(8)
    built = model.build_deep_model(
        sizes, embedding_dim=8, hidden_units=(16, 8), bias_terms=True, rank_weight=1.0, rank_bias=True
    )
    randomize_biases(built, 8)
    return built


def dot_model(sizes: dict[str, int]):
    """A matrix-factorization model: a Dot of two embeddings, which the fast path does not cover."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(9)
    user = keras.Input((1,), name=C.USER_IDX, dtype="int32")
    movie = keras.Input((1,), name=C.MOVIE_IDX, dtype="int32")
    u = layers.Reshape((4,))(layers.Embedding(sizes["user"], 4)(user))
    m = layers.Reshape((4,))(layers.Embedding(sizes["movie"], 4)(movie))
    like = layers.Activation("sigmoid", name=C.LIKE)(layers.Dot(axes=1, name="dot")([u, m]))
    return keras.Model([user, movie], {C.LIKE: like})


@pytest.fixture(scope="module")
def score_job():
    return load_job("score")


@pytest.fixture(scope="module")
def models(prepared_small, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    sizes = vocab_sizes(prepared_small)
    return {
        "paper": save_model_dir(paper_model(sizes), root / "paper", prepared_small),
        "deep": save_model_dir(deep_model(sizes), root / "deep", prepared_small),
        "dot": save_model_dir(dot_model(sizes), root / "dot", prepared_small),
    }


@pytest.fixture(scope="module")
def small_world(spark, prepared_small, tmp_path_factory) -> Path:
    """prepared_small as if prepare had sampled 100 users, with a 100-movie catalogue.

    The catalogue is the 100 most rated movies, so heavy raters have fewer
    than K unwatched candidates (one has none); the 510 other users are
    outside the vocabulary.
    """
    from pyspark.sql import functions as F

    target = tmp_path_factory.mktemp("small-world") / "prepared"
    interactions = spark.read.parquet(str(prepared_small / "interactions"))
    top = interactions.groupBy(C.MOVIE_ID).count().orderBy(F.desc("count"), C.MOVIE_ID).limit(100)
    movies = spark.read.parquet(str(prepared_small / "movies")).join(top.select(C.MOVIE_ID), C.MOVIE_ID, "left_semi")
    movies.coalesce(1).write.parquet(str(target / "movies"))
    users = spark.read.parquet(str(prepared_small / "vocab" / "user")).filter(F.col(C.USER_IDX) <= 100)
    users.coalesce(1).write.parquet(str(target / "vocab" / "user"))
    for name in ("movie", "genre", "year", "tag"):
        shutil.copytree(prepared_small / "vocab" / name, target / "vocab" / name)
    shutil.copytree(prepared_small / "interactions", target / "interactions")
    manifest = {"vocab_sizes": {**vocab_sizes(prepared_small), "user": 101}}
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


@pytest.fixture(scope="module")
def small_world_model(small_world, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("small-world-model")
    return save_model_dir(paper_model(vocab_sizes(small_world)), root / "paper", small_world)


def run(job, data: Path, model: Path, output: Path, *settings: str) -> dict:
    argv = ["--data", str(data), "--model", str(model), "--output", str(output)]
    for setting in settings:
        argv += ["--set", setting]
    return job.main(argv)


def recommendations(output: Path) -> pd.DataFrame:
    frame = pq.read_table(output / "recommendations").to_pandas()
    return frame.sort_values([C.USER_ID, C.RANK]).reset_index(drop=True)


@pytest.fixture(scope="module")
def fast_run(score_job, prepared_small, models, tmp_path_factory) -> Path:
    """All 610 sampled users on the fast path, in many small Arrow batches, with a CSV export."""
    output = tmp_path_factory.mktemp("fast") / "scores"
    run(
        score_job,
        prepared_small,
        models["paper"],
        output,
        "path=fast",
        "partitions=8",
        "arrow_batch_users=25",
        "block_users=3",
        "export=csv",
    )
    return output


@pytest.fixture(scope="module")
def generic_run(score_job, prepared_small, models, tmp_path_factory) -> Path:
    """The 30 lowest userIds on the generic (Keras) path, with a JSON export."""
    output = tmp_path_factory.mktemp("generic") / "scores"
    run(score_job, prepared_small, models["paper"], output, "path=generic", "limit_users=30", "export=json")
    return output


@pytest.fixture(scope="module")
def watched(prepared_small) -> pd.DataFrame:
    return pq.read_table(prepared_small / "interactions", columns=[C.USER_ID, C.MOVIE_ID]).to_pandas()


def manifest(output: Path) -> dict:
    return json.loads((output / "manifest.json").read_text())


# --- exactness ----------------------------------------------------------------


def keras_and_fast(
    model_dir: Path, prepared: Path, users: np.ndarray, output: str
) -> tuple[np.ndarray, np.ndarray, str]:
    """Scores of `users` against the whole catalogue by Keras predict and by the fast path, on one output."""
    model = scored_model(load_keras_model((model_dir / MODEL_FILE).read_bytes()), output)
    movies = pq.read_table(prepared / "movies").to_pandas().sort_values(C.MOVIE_ID).reset_index(drop=True)
    catalogue = catalogue_inputs(model, movies)
    factorized = factorize(model, vocab_sizes(prepared)["user"], catalogue)
    kernel = kernel_for(factorized)
    keys = kernel(users)
    fast = apply(factorized.tail, keys.astype(np.float64).reshape(-1, 1)).reshape(keys.shape)
    feed = {name: np.tile(values, (len(users),) + (1,) * (values.ndim - 1)) for name, values in catalogue.items()}
    feed[C.USER_IDX] = np.repeat(users, len(movies)).reshape(-1, 1).astype("int32")
    reference = model.predict(feed, batch_size=65536, verbose=0).reshape(keys.shape)
    return reference, fast, type(kernel).__name__


@pytest.mark.parametrize(
    "name, output, kernel",
    [("paper", C.LIKE, "ReluSumKernel"), ("deep", C.LIKE, "DenseKernel"), ("deep", "rank", "DenseKernel")],
)
def test_fast_path_equals_keras_within_1e5(models, prepared_small, name, output, kernel):
    users = np.array([0, 1, 2, 77, 300, 610])
    reference, fast, used = keras_and_fast(models[name], prepared_small, users, output)
    assert used == kernel
    assert np.abs(fast - reference).max() <= TOLERANCE
    assert reference.std() > 1e-3  # the comparison is not between constants


def test_auto_ranks_by_the_rank_output_when_there_is_one(models):
    deep, paper = (load_keras_model((models[name] / MODEL_FILE).read_bytes()) for name in ("deep", "paper"))
    assert output_for(deep, "auto") == "rank" and output_for(paper, "auto") == C.LIKE
    assert output_for(deep, C.RATING) == C.RATING
    with pytest.raises(ScoreError, match="has outputs"):
        output_for(deep, "stars")


def test_fast_and_generic_runs_agree(fast_run, generic_run):
    generic = recommendations(generic_run)
    fast = recommendations(fast_run)
    fast = fast[fast[C.USER_ID].isin(generic[C.USER_ID].unique())].reset_index(drop=True)
    assert len(generic) == len(fast) == 300
    assert (generic[C.USER_ID].values == fast[C.USER_ID].values).all()
    assert np.abs(generic[C.SCORE].values - fast[C.SCORE].values).max() <= TOLERANCE
    # Lists may differ only where two scores are closer than the tolerance.
    differs = generic[C.MOVIE_ID].values != fast[C.MOVIE_ID].values
    near_tie = np.abs(np.diff(generic[C.SCORE].values, prepend=np.inf)) <= TOLERANCE
    near_tie |= np.abs(np.diff(generic[C.SCORE].values, append=-np.inf)) <= TOLERANCE
    assert not (differs & ~near_tie).any()
    assert manifest(generic_run)["path"]["chosen"] == "generic"
    assert manifest(fast_run)["path"] == {
        "chosen": "fast",
        "reason": "the first Dense reads per-input embeddings only",
        "kernel": "ReluSumKernel",
        "output": C.LIKE,
    }


def test_non_factorizable_model_goes_generic_on_auto(score_job, prepared_small, models, tmp_path):
    document = run(score_job, prepared_small, models["dot"], tmp_path / "out", "limit_users=3")
    assert document["path"]["chosen"] == "generic"
    assert "'dot' (Dot) is not a Dense or elementwise layer" in document["path"]["reason"]
    assert document["recommendations"] == {"rows": 30, "expected": 30}


# --- top-K rules --------------------------------------------------------------


def test_no_watched_movie_is_ever_recommended(fast_run, generic_run, watched):
    for output in (fast_run, generic_run):
        recs = recommendations(output)
        assert recs.merge(watched, on=[C.USER_ID, C.MOVIE_ID]).empty


def test_every_sampled_user_gets_k_ranked_unique_movies(fast_run, prepared_small):
    recs = recommendations(fast_run)
    document = manifest(fast_run)
    assert recs[C.USER_ID].nunique() == 610 and len(recs) == 6100
    assert document["users"] == {
        "requested": 610,
        "unknown": 0,
        "skipped": 0,
        "scored": 610,
        "short": 0,
        "without_history": 0,
    }
    assert document["recommendations"] == {"rows": 6100, "expected": 6100}
    assert document["pairs_scored"] == 610 * 9742 - 100836
    assert all(ranks == list(range(1, 11)) for ranks in recs.groupby(C.USER_ID)[C.RANK].apply(list))
    assert not recs.duplicated([C.USER_ID, C.MOVIE_ID]).any()
    movies = pq.read_table(prepared_small / "movies", columns=[C.MOVIE_ID, C.TITLE, C.GENRES]).to_pandas()
    joined = recs.merge(movies, on=C.MOVIE_ID, suffixes=("", "_catalogue"))
    assert len(joined) == len(recs)
    assert (joined[C.TITLE] == joined[f"{C.TITLE}_catalogue"]).all()
    assert (joined[C.GENRES] == joined[f"{C.GENRES}_catalogue"]).all()


def test_lists_are_ordered_by_score_then_movie_id(fast_run):
    recs = recommendations(fast_run)
    same_user = recs[C.USER_ID].values[1:] == recs[C.USER_ID].values[:-1]
    score_step = np.diff(recs[C.SCORE].values)
    movie_step = np.diff(recs[C.MOVIE_ID].values)
    assert (score_step[same_user] <= 0).all()
    assert (movie_step[same_user & (score_step == 0)] > 0).all()


def full_sort(scores: np.ndarray, excluded: np.ndarray, k: int) -> list[list[int]]:
    """The reference: per row, every eligible column sorted by score descending then column."""
    lists = []
    for row, banned in zip(scores, excluded):
        columns = np.flatnonzero(~banned)
        lists.append(columns[np.lexsort((columns, -row[columns]))][:k].tolist())
    return lists


def test_top_k_equals_a_full_sort_with_ties_and_saturation():
    """The sampled-threshold top-K against a full sort, on exact ties, saturated sigmoids and masks."""
    rng = np.random.default_rng(3)
    tails = [(), (("sigmoid",),), (("sigmoid",), ("affine", 4.5, 0.5))]
    for trial in range(120):
        rows, columns, k = int(rng.integers(1, 6)), int(rng.integers(1, 2500)), int(rng.integers(1, 30))
        if trial % 3 == 0:
            keys = rng.integers(-3, 3, size=(rows, columns)).astype(np.float32)  # many exact ties
        else:
            keys = rng.standard_normal((rows, columns)).astype(np.float32) * (1e3 if trial % 3 == 1 else 1)
        excluded = rng.random((rows, columns)) < rng.random()
        keys[excluded] = -np.inf
        tail = tails[trial % 3]
        got_rows, got_cols, got_scores, got_ranks = top_k(keys, k, tail)
        scores = apply(tail, np.where(excluded, 0, keys).astype(np.float64).reshape(-1, 1))
        expected = full_sort(scores.reshape(rows, columns).astype(np.float32), excluded, k)
        for row, want in enumerate(expected):
            assert got_cols[got_rows == row].tolist() == want
            assert got_ranks[got_rows == row].tolist() == list(range(len(want)))


def test_block_size_does_not_change_the_lists(models, prepared_small, watched):
    model = scored_model(load_keras_model((models["paper"] / MODEL_FILE).read_bytes()), C.LIKE)
    movies = pq.read_table(prepared_small / "movies").to_pandas().sort_values(C.MOVIE_ID).reset_index(drop=True)
    factorized = factorize(model, 611, catalogue_inputs(model, movies))
    scorer = FastScorer(factorized, movies[C.MOVIE_ID].to_numpy())
    users = watched[watched[C.USER_ID] <= 9].groupby(C.USER_ID)[C.MOVIE_ID].apply(np.array).rename(C.WATCHED)
    batch = users.reset_index().assign(**{C.USER_IDX: lambda f: f[C.USER_ID]})
    lists = [recommend_batch(scorer, batch, 20, block) for block in (1, 4, 9)]
    assert lists[0].equals(lists[1]) and lists[0].equals(lists[2])


# --- users=all, unknown users, short lists ---------------------------------------


def catalogue_ids(small_world: Path) -> set[int]:
    return set(pq.read_table(small_world / "movies", columns=[C.MOVIE_ID]).column(0).to_pylist())


def expected_counts(small_world: Path, watched: pd.DataFrame, k: int) -> pd.Series:
    catalogue = catalogue_ids(small_world)
    seen = watched[watched[C.MOVIE_ID].isin(catalogue)].groupby(C.USER_ID).size()
    seen = seen.reindex(sorted(watched[C.USER_ID].unique()), fill_value=0)
    return np.minimum(k, len(catalogue) - seen)


def test_users_all_scores_unknown_users_with_index_0(score_job, small_world, small_world_model, watched, tmp_path):
    output = tmp_path / "all"
    document = run(score_job, small_world, small_world_model, output, "users=all")
    recs = recommendations(output)
    counts = expected_counts(small_world, watched, 10)
    assert (counts < 10).sum() == 7 and counts.min() == 0
    assert recs.groupby(C.USER_ID).size().reindex(counts.index, fill_value=0).equals(counts)
    assert document["users"] == {
        "requested": 610,
        "unknown": 510,
        "skipped": 0,
        "scored": 610,
        "short": int((counts < 10).sum()),
        "without_history": 610 - watched[watched[C.MOVIE_ID].isin(catalogue_ids(small_world))][C.USER_ID].nunique(),
    }
    assert document["recommendations"] == {"rows": int(counts.sum()), "expected": int(counts.sum())}
    assert recs.merge(watched, on=[C.USER_ID, C.MOVIE_ID]).empty


def test_users_all_can_skip_unknown_users(score_job, small_world, small_world_model, watched, tmp_path):
    output = tmp_path / "known"
    document = run(score_job, small_world, small_world_model, output, "users=all", "unknown_users=skip", "top_k=3")
    recs = recommendations(output)
    assert document["users"]["requested"] == 610 and document["users"]["skipped"] == 510
    assert document["users"]["scored"] == 100 and set(recs[C.USER_ID]) <= set(range(1, 101))
    counts = expected_counts(small_world, watched, 3).loc[1:100]
    assert recs.groupby(C.USER_ID).size().reindex(counts.index, fill_value=0).equals(counts)


# --- outputs -----------------------------------------------------------------------


def test_manifest_and_exports(fast_run, generic_run):
    document = manifest(fast_run)
    assert document["model"]["vocabularies_checked"] == ["user", "movie", "genre", "year", "tag"]
    assert len(document["model"]["sha256"]) == 64
    assert document["config"]["top_k"] == 10 and document["partitions"] == 8
    assert document["pairs_per_second"] > 0 and document["worker_cpu_s"] > 0 and document["score_jvm_cpu_s"] > 0
    assert 0 < document["pairs_per_cpu_second"] < document["pairs_per_worker_cpu_second"]
    assert set(document["timings_s"]) >= {"extract", "model", "candidates", "score"}
    # The model is built once per Python worker, not once per batch (25 users each) or per task.
    assert document["arrow_batches"] >= 8 * 3 and document["scorer_loads"] <= 2
    exported = pd.read_csv(next((fast_run / "export").glob("*.csv")))
    pd.testing.assert_frame_equal(exported, recommendations(fast_run), check_dtype=False, atol=1e-6)
    lines = pd.read_json(next((generic_run / "export").glob("*.json")), lines=True)
    assert list(lines.columns) == list(C.RECOMMENDATION_COLUMNS) and len(lines) == 300


# --- bad inputs: one-line failures, previous output kept ---------------------------------


def test_model_of_other_vocabularies_is_rejected(score_job, prepared_small, small_world_model, fast_run, tmp_path):
    output = tmp_path / "kept"
    shutil.copytree(fast_run, output)
    with pytest.raises(ScoreError, match=r"model/vocabulary mismatch: .*vocab/user differs from .*vocab/user"):
        run(score_job, prepared_small, small_world_model, output)
    assert manifest(output) == manifest(fast_run)


def test_embedding_sizes_are_checked_without_a_vocab_copy(score_job, prepared_small, small_world, tmp_path):
    model_dir = save_model_dir(paper_model(vocab_sizes(small_world)), tmp_path / "model", vocab_from=None)
    message = r"embedding 'embed_user_idx' of user_idx has 101 rows, vocab/user has 611"
    with pytest.raises(ScoreError, match=message):
        run(score_job, prepared_small, model_dir, tmp_path / "out")


def test_missing_interactions_is_named(score_job, prepared_small, models, tmp_path):
    data = tmp_path / "prepared"
    shutil.copytree(prepared_small, data, ignore=shutil.ignore_patterns("interactions", "train", "test", "figures"))
    with pytest.raises(ScoreError, match=r"interactions is missing: not a complete prepare output"):
        run(score_job, data, models["paper"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_a_model_is_named(score_job, prepared_small, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / MODEL_FILE).write_text("not a model")
    with pytest.raises(ScoreError, match=r"model.keras is not a Keras model file \(a .keras zip archive\)$"):
        run(score_job, prepared_small, model_dir, tmp_path / "out")


def test_fast_path_on_a_non_factorizable_model_fails(score_job, prepared_small, models, tmp_path):
    with pytest.raises(ScoreError, match=r"path=fast: the model does not factorize \(layer 'dot'"):
        run(score_job, prepared_small, models["dot"], tmp_path / "out", "path=fast")


def test_an_empty_catalogue_is_named(score_job, prepared_small, models, tmp_path):
    data = emptied_copy(prepared_small, tmp_path / "prepared", "movies")
    before = tree_digest(tmp_path)
    with pytest.raises(ScoreError) as failure:
        run(score_job, data, models["paper"], tmp_path / "out")
    assert str(failure.value) == f"{data}/movies has no rows: there is no catalogue to rank"
    assert tree_digest(tmp_path) == before


def test_no_user_to_score_is_named(score_job, prepared_small, tmp_path):
    data = emptied_copy(prepared_small, tmp_path / "prepared", "vocab/user")
    model_dir = save_model_dir(paper_model(vocab_sizes(data)), tmp_path / "model", vocab_from=None)
    before = tree_digest(tmp_path)
    with pytest.raises(ScoreError) as failure:
        run(score_job, data, model_dir, tmp_path / "out")
    assert str(failure.value) == f"no user to score in {data} (users=sample, unknown_users=score, 0 users requested)"
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize("k", ["0", "-3"])
def test_k_must_be_positive_and_the_job_says_so_in_one_line(tmp_path, k):
    arguments = ["--data", str(tmp_path), "--model", str(tmp_path), "--output", str(tmp_path / "out")]
    result = run_job("score", *arguments, "--set", f"top_k={k}", timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"score: top_k: expected a positive integer, got {k}"]
