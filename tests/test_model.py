"""The models (Table 1, safe-mode saving, the factorization contract) and the numpy metrics."""

from __future__ import annotations

import io
import math
from contextlib import redirect_stdout

import keras
import numpy as np
import pytest

from sparkrec.core import columns as C
from sparkrec.core import metrics
from sparkrec.models import pairwise as M
from sparkrec.models import saved
from sparkrec.train.config import TrainConfig
from sparkrec.train.stages import configure_runtime

configure_runtime(TrainConfig(intra_op_threads=2, inter_op_threads=1, seed=7))

SMALL_VOCAB = {"user": 30, "movie": 50, "genre": 21, "year": 12, "tag": 9}


def random_inputs(model: keras.Model, rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Valid random values for every input of `model` under SMALL_VOCAB."""
    rng = np.random.default_rng(seed)
    values = {}
    for name in M.input_names(model):
        width = len(M.INPUT_COLUMNS[name])
        if name == M.GENRE_FLAGS:
            values[name] = rng.integers(0, 2, (rows, width)).astype("float32")
        else:
            values[name] = rng.integers(0, SMALL_VOCAB[M.INPUT_VOCABULARY[name]], (rows, width)).astype("int32")
    return values


def both_models() -> list[keras.Model]:
    return [M.build_paper_model(SMALL_VOCAB), M.build_deep_model(SMALL_VOCAB, bias_terms=True, rank_weight=1.0)]


def test_paper_model_is_table_1_with_1061021_parameters():
    model = M.build_paper_model(M.PAPER_VOCAB_SIZES)
    summary = io.StringIO()
    with redirect_stdout(summary):
        model.summary(line_length=150)
    assert model.count_params() == 1_061_021
    assert "1,061,021" in summary.getvalue()
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("InputLayer") == 5 and kinds.count("Reshape") == 5 and kinds.count("Dropout") == 2
    assert kinds[-8:] == ["Concatenate", "Dropout", "Dense", "Activation", "Dropout", "Dense", "Activation", "Rescale"]
    assert "Lambda" not in kinds
    embeddings = [layer.count_params() for layer in model.layers if isinstance(layer, keras.layers.Embedding)]
    dense = [layer.count_params() for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert embeddings == [250_000, 673_500, 5_000, 5_000, 125_000]
    assert dense == [2_510, 11]


# An untrained model saves an unbuilt optimizer; loading says so, harmlessly.
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
@pytest.mark.parametrize("model", both_models(), ids=["paper", "deep"])
def test_models_save_and_load_in_safe_mode_with_identical_predictions(model, tmp_path):
    x = random_inputs(model, rows=64)
    before = model.predict(x, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = saved.load(tmp_path / "model.keras")
    after = loaded.predict(x, verbose=0)
    assert sorted(after) == sorted(before)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])


def test_outputs_are_named_after_their_label_columns():
    paper, deep = both_models()
    assert paper.output_names == [C.LIKE]
    assert deep.output_names == [C.LIKE, M.RANK_OUTPUT, C.RATING]  # Keras sorts dict outputs by name
    assert M.build_deep_model(SMALL_VOCAB, rating_weight=0).output_names == [C.LIKE]
    assert M.OUTPUT_COLUMNS == {C.LIKE: C.LIKE, C.RATING: C.RATING, M.RANK_OUTPUT: C.LIKE}


def test_rank_head_reads_the_last_hidden_layer_like_the_like_head():
    """The factorization contract: rank = sigmoid(Dense(1)(the MLP's last layer)), as like without bias terms."""
    _, model = both_models()
    rank_dense, like_dense = model.get_layer("rank_logit"), model.get_layer("like_logit")
    assert rank_dense.input is like_dense.input and rank_dense.get_config()["activation"] == "linear"
    assert model.get_layer(M.RANK_OUTPUT).get_config()["activation"] == "sigmoid"


@pytest.mark.parametrize("model", both_models(), ids=["paper", "deep"])
def test_first_dense_is_the_sum_of_per_input_projections(model):
    """The scorer's factorization: interaction(concat(v_i)) == sum_i v_i @ W[block_i] + b."""
    x = random_inputs(model, rows=16, seed=1)
    names = M.input_names(model)
    vectors = keras.Model(model.inputs, [model.get_layer(f"vector_{name}").output for name in names]).predict(
        x, verbose=0
    )
    interaction = keras.Model(model.inputs, model.get_layer("interaction").output).predict(x, verbose=0)
    kernel, bias = model.get_layer("interaction").get_weights()
    blocks = M.first_dense_blocks(model)
    assert list(blocks) == names and blocks[names[-1]].stop == kernel.shape[0]
    summed = sum(vector @ kernel[blocks[name]] for name, vector in zip(names, vectors)) + bias
    np.testing.assert_allclose(summed, interaction, rtol=1e-5, atol=1e-5)


def test_movie_side_inputs_read_only_columns_of_the_movies_table():
    movie_side = [name for name in M.INPUT_COLUMNS if name not in M.USER_INPUTS]
    for name in movie_side:
        assert set(M.INPUT_COLUMNS[name]) <= set(C.MOVIE_FEATURE_COLUMNS), name
    assert not set(M.INPUT_COLUMNS[C.USER_IDX]) & set(C.MOVIE_FEATURE_COLUMNS)


def test_rescale_maps_the_unit_interval_onto_its_range():
    layer = M.Rescale(0.5, 5.0)
    np.testing.assert_allclose(np.asarray(layer(np.array([[0.0], [0.5], [1.0]], "float32"))), [[0.5], [2.75], [5.0]])
    assert M.Rescale.from_config(layer.get_config()).get_config() == layer.get_config()


# ----------------------------------------------------------------- metrics


Y = np.array([1, 0, 1, 1, 0, 0, 1, 0])
P = np.array([0.9, 0.4, 0.6, 0.3, 0.6, 0.1, 0.8, 0.5])


def test_classification_metrics_on_a_hand_counted_example():
    # threshold 0.5: predicted 1 at rows 0, 2, 4, 6, 7 -> TP 3 (0, 2, 6), FP 2 (4, 7), FN 1 (3), TN 2 (1, 5)
    assert metrics.accuracy(Y, P) == 5 / 8
    assert metrics.precision(Y, P) == 3 / 5
    assert metrics.recall(Y, P) == 3 / 4
    assert metrics.f1(Y, P) == 6 / 9
    report = metrics.classification_report(Y, P)
    assert report["rows"] == 8 and report["positive_rate"] == 0.5


def test_auc_counts_ordered_pairs_and_half_ties():
    # positives 0.9 0.6 0.3 0.8 vs negatives 0.4 0.6 0.1 0.5: wins 4 + 3.5 + 1 + 4 = 12.5 of 16 pairs
    assert metrics.roc_auc(Y, P) == 12.5 / 16
    assert metrics.roc_auc([0, 1], [0.2, 0.7]) == 1.0
    assert metrics.roc_auc([0, 1], [0.7, 0.7]) == 0.5
    assert math.isnan(metrics.roc_auc([1, 1], [0.2, 0.7]))


def test_log_loss_is_the_mean_binary_cross_entropy_with_clipping():
    expected = (
        -(
            math.log(0.9)
            + math.log(0.6)
            + math.log(0.3)
            + math.log(0.8)
            + math.log(0.6)
            + math.log(0.4)
            + math.log(0.9)
            + math.log(0.5)
        )
        / 8
    )
    assert metrics.log_loss(Y, P) == pytest.approx(expected, rel=1e-12)
    assert metrics.log_loss([1], [0.0]) == pytest.approx(-math.log(metrics.EPSILON))


def test_the_logit_scale_is_the_temperature_that_fits_the_label_rates():
    """Logits +2 and -2, each with three of four labels on its side: sigmoid(2a) must be 3/4, so a = ln(3) / 2."""
    logits = np.array([2.0] * 4 + [-2.0] * 4)
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    assert metrics.logit_scale(labels, logits) == pytest.approx(math.log(3) / 2, abs=1e-5)
    assert metrics.logit_scale(labels, 3 * logits) == pytest.approx(math.log(3) / 6, abs=1e-5)
    assert metrics.logit_scale(labels, np.zeros(8)) == 1.0, "no logit to scale"
    assert metrics.logit_scale([], []) == 1.0


def test_regression_metrics_and_empty_denominators():
    assert metrics.rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3))
    assert metrics.mae([1, 2, 3], [2, 2, 5]) == 1.0
    assert metrics.precision([0, 1], [0.1, 0.2]) == 0.0
    assert metrics.regression_report([1.0, 2.0], [1.0, 2.0]) == {"rows": 2, "rmse": 0.0, "mae": 0.0}
