"""Keras models that predict whether a user likes a movie.

`paper` is Table 1 of the seed paper, layer for layer. `deep` is our own model:
more movie-side inputs (multi-hot genres, tags), a wider MLP, a rating head
trained beside the like head, and optional user and movie bias terms.
docs/results.md records what each of these was measured to be worth.

Factorization contract (what the scoring job may rely on)
---------------------------------------------------------
Both models share one shape up to their first Dense layer, so the scorer can
precompute a user side and a movie side instead of running the whole network
for every (user, movie) pair:

* Inputs are named after what they read. Scalar inputs carry one column each
  (`user_idx`, `movie_idx`, `genre1_idx`, `genre2_idx`, `year_idx`), shape (1,);
  `genre_flags` stacks `columns.GENRE_FLAG_COLUMNS` in order, shape (20,);
  `tag_idx` stacks `columns.TAG_IDX_COLUMNS`, shape (3,). `INPUT_COLUMNS` maps
  each input to its columns.
* `USER_INPUTS` is the user side; every other input is movie-side, and every
  column a movie-side input reads is a column of the `movies/` table
  (`columns.MOVIE_FEATURE_COLUMNS`), so the movie side is computable once per
  catalogue movie.
* Each input becomes one vector, the output of the layer `vector_<input>`:
  for an index input the row of the Embedding `embed_<input>` (tag_idx: the
  mean of its three rows); for `genre_flags` the multi-hot times the kernel of
  the bias-free Dense `vector_genre_flags`.
* The Concatenate layer `features` joins the vectors in `model.inputs` order;
  `first_dense_blocks(model)` gives each input's rows of the next kernel.
* The Dense layer `interaction` is linear (its activation is a separate
  layer). With kernel W and bias b, and dropout being the identity at
  inference, `interaction = sum_i vector_i @ W[block_i] + b`: the user part
  and the movie part are computed apart and added per pair.
* Everything after `interaction` depends on it alone, except the deep model's
  optional bias terms (`bias_terms=True`): the like logit is then `like_logit +
  bias_user_idx[user] + bias_movie_idx[movie]` (Embedding layers of width 1)
  before the sigmoid; likewise the rank logit with `rank_bias=True` is
  `rank_logit + rank_bias_movie_idx[movie]`.
  `keras.Model(inputs=[intermediate tensors], outputs=...)` builds that tail
  from the loaded model.

Outputs are a dict: `like` (probability) and, for `deep`, `rating` (stars)
and optionally `rank`. `rank` is P(the user rated the movie and liked it),
learned from sampled unrated movies beside the rated ones; it ranks the
unrated catalogue, where `like` (P(like | rated)) favours obscure movies.
It is a Dense(1) (plus an optional movie bias) + sigmoid on the last hidden
layer, like `like`, so it factorizes the same way. Its order, not its value,
is what it is for: sampled negatives (and the sampling offsets the training
job folds into its movie bias, `sparkrec.train.negatives`) scale its odds.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from sparkrec.core import columns as C
from sparkrec.models.optimizer import adam

GENRE_FLAGS = "genre_flags"
TAG_IDX = "tag_idx"
LIKE_OUTPUT = C.LIKE
RATING_OUTPUT = C.RATING
RANK_OUTPUT = "rank"
# The label column each output is trained on; `rank` reads `like` on rated rows.
OUTPUT_COLUMNS = {LIKE_OUTPUT: C.LIKE, RATING_OUTPUT: C.RATING, RANK_OUTPUT: C.LIKE}

INPUT_COLUMNS: dict[str, tuple[str, ...]] = {
    C.USER_IDX: (C.USER_IDX,),
    C.MOVIE_IDX: (C.MOVIE_IDX,),
    C.GENRE1_IDX: (C.GENRE1_IDX,),
    C.GENRE2_IDX: (C.GENRE2_IDX,),
    C.YEAR_IDX: (C.YEAR_IDX,),
    GENRE_FLAGS: C.GENRE_FLAG_COLUMNS,
    TAG_IDX: C.TAG_IDX_COLUMNS,
}
USER_INPUTS = (C.USER_IDX,)
# Which vocabulary (manifest vocab_sizes key) each index input embeds.
INPUT_VOCABULARY = {name: C.INDEX_VOCABULARY[cols[0]] for name, cols in INPUT_COLUMNS.items() if name != GENRE_FLAGS}

# Table 1 of the paper: its vocabulary sizes give 1,061,021 parameters.
PAPER_VOCAB_SIZES = {"user": 5000, "movie": 13470, "genre": 100, "year": 2500}
PAPER_INPUTS = (C.USER_IDX, C.MOVIE_IDX, C.GENRE1_IDX, C.GENRE2_IDX, C.YEAR_IDX)
DEEP_INPUTS = (C.USER_IDX, C.MOVIE_IDX, C.YEAR_IDX, GENRE_FLAGS, TAG_IDX)


@keras.saving.register_keras_serializable(package="sparkrec")
class Rescale(layers.Layer):
    """Maps [0, 1] onto [minimum, maximum]: the paper's output Lambda, loadable in safe mode."""

    def __init__(self, minimum: float = 0.0, maximum: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.minimum = float(minimum)
        self.maximum = float(maximum)

    def call(self, inputs):
        return inputs * (self.maximum - self.minimum) + self.minimum

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "minimum": self.minimum, "maximum": self.maximum}


def model_input(name: str) -> keras.KerasTensor:
    """The Input for `name`: int32 indices, or float32 for the genre multi-hot."""
    dtype = "float32" if name == GENRE_FLAGS else "int32"
    return keras.Input(shape=(len(INPUT_COLUMNS[name]),), name=name, dtype=dtype)


def index_vector(inputs, name: str, vocab_size: int, dim: int, l2: float):
    """Embedding of an index input, flattened to one vector per row (the mean over tag slots)."""
    embedded = layers.Embedding(
        vocab_size,
        dim,
        embeddings_initializer="he_normal",
        embeddings_regularizer=keras.regularizers.l2(l2),
        name=f"embed_{name}",
    )(inputs)
    if len(INPUT_COLUMNS[name]) > 1:
        return layers.GlobalAveragePooling1D(name=f"vector_{name}")(embedded)
    return layers.Reshape((dim,), name=f"vector_{name}")(embedded)


def input_vector(inputs, name: str, vocab_sizes: dict[str, int], dim: int, l2: float):
    if name == GENRE_FLAGS:
        return layers.Dense(dim, use_bias=False, name=f"vector_{name}")(inputs)
    return index_vector(inputs, name, vocab_sizes[INPUT_VOCABULARY[name]], dim, l2)


def embedded_features(names, vocab_sizes: dict[str, int], dim: int, l2: float):
    """Inputs and their concatenated vectors, in input order (the contract's `features`)."""
    inputs = {name: model_input(name) for name in names}
    vectors = [input_vector(inputs[name], name, vocab_sizes, dim, l2) for name in names]
    return inputs, layers.Concatenate(name="features")(vectors)


def build_paper_model(
    vocab_sizes: dict[str, int], loss: str = "mse", learning_rate: float = 1e-3, ema_momentum: float = 0.0
) -> keras.Model:
    """Table 1 of the paper, with the dropout rates and initializers of the tutorial it cites.

    Five 50-d embeddings, concatenated, dropout 0.05, Dense(10) + ReLU, dropout
    0.5, Dense(1) + sigmoid, then the output rescaling (identity on the 0/1
    like label, kept so the layer stack is the paper's). Trained with MSE on
    the like label: Table 2's loss of ~0.18 at ~74% accuracy is an MSE.
    """
    inputs, features = embedded_features(PAPER_INPUTS, vocab_sizes, dim=50, l2=1e-6)
    x = layers.Dropout(0.05)(features)
    x = layers.Dense(10, kernel_initializer="he_normal", name="interaction")(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(0.5)(x)
    x = layers.Dense(1, kernel_initializer="he_normal")(x)
    x = layers.Activation("sigmoid")(x)
    like = Rescale(0.0, 1.0, name=LIKE_OUTPUT)(x)
    model = keras.Model(inputs=list(inputs.values()), outputs={LIKE_OUTPUT: like}, name="paper")
    model.compile(
        optimizer=adam(learning_rate, ema_momentum),
        loss={LIKE_OUTPUT: loss},
        metrics={LIKE_OUTPUT: like_metrics()},
    )
    return model


def bias_term(inputs, name: str, vocab_size: int, prefix: str = "bias"):
    """A learned per-index offset of a logit, starting at zero."""
    bias = layers.Embedding(vocab_size, 1, embeddings_initializer="zeros", name=f"{prefix}_{name}")(inputs)
    return layers.Reshape((1,))(bias)


def build_deep_model(
    vocab_sizes: dict[str, int],
    embedding_dim: int = 32,
    hidden_units: tuple[int, ...] = (256, 128),
    dropout: float = 0.2,
    l2: float = 3e-3,
    bias_terms: bool = False,
    rating_weight: float = 1.0,
    learning_rate: float = 2e-3,
    rank_weight: float = 0.0,
    rank_bias: bool = False,
    ema_momentum: float = 0.0,
) -> keras.Model:
    """Our model: richer movie side, bias terms, an MLP, a rating head when rating_weight > 0
    and a rank head when rank_weight > 0.

    The rating head shares the MLP and regularises it with the star value,
    which carries more information than the thresholded like label. The rank
    head needs sampled unrated pairs in training (`sparkrec.train.negatives`); the
    like and rating heads give those rows zero weight, so their metrics are
    weighted metrics. `rank_bias` adds a per-movie offset to the rank logit:
    how often a movie is rated at all is largely a property of the movie,
    which a bias learns without the embeddings' L2.
    """
    inputs, features = embedded_features(DEEP_INPUTS, vocab_sizes, embedding_dim, l2)
    x = layers.Dense(hidden_units[0], name="interaction")(features)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(dropout)(x)
    for units in hidden_units[1:]:
        x = layers.Dense(units, activation="relu")(x)
        x = layers.Dropout(dropout)(x)
    logit = layers.Dense(1, name="like_logit")(x)
    if bias_terms:
        user_bias = bias_term(inputs[C.USER_IDX], C.USER_IDX, vocab_sizes["user"])
        movie_bias = bias_term(inputs[C.MOVIE_IDX], C.MOVIE_IDX, vocab_sizes["movie"])
        logit = layers.Add()([logit, user_bias, movie_bias])
    outputs = {LIKE_OUTPUT: layers.Activation("sigmoid", name=LIKE_OUTPUT)(logit)}
    losses = {LIKE_OUTPUT: "binary_crossentropy"}
    loss_weights = {LIKE_OUTPUT: 1.0}
    metrics = {LIKE_OUTPUT: like_metrics()}
    if rating_weight > 0:
        stars = layers.Dense(1, activation="sigmoid")(x)
        outputs[RATING_OUTPUT] = Rescale(*C.RATING_RANGE, name=RATING_OUTPUT)(stars)
        losses[RATING_OUTPUT] = "mse"
        loss_weights[RATING_OUTPUT] = rating_weight
        metrics[RATING_OUTPUT] = [keras.metrics.RootMeanSquaredError(name="rmse")]
    if rank_weight > 0:
        rank = layers.Dense(1, name="rank_logit")(x)
        if rank_bias:
            movie_bias = bias_term(inputs[C.MOVIE_IDX], C.MOVIE_IDX, vocab_sizes["movie"], prefix="rank_bias")
            rank = layers.Add()([rank, movie_bias])
        outputs[RANK_OUTPUT] = layers.Activation("sigmoid", name=RANK_OUTPUT)(rank)
        losses[RANK_OUTPUT] = "binary_crossentropy"
        loss_weights[RANK_OUTPUT] = rank_weight
    model = keras.Model(inputs=list(inputs.values()), outputs=outputs, name="deep")
    model.compile(
        optimizer=adam(learning_rate, ema_momentum),
        loss=losses,
        loss_weights=loss_weights,
        weighted_metrics=metrics,
    )
    return model


def shift_rank_bias(model: keras.Model, offsets) -> None:
    """Add `offsets` (one per movie index) to the rank head's movie bias."""
    layer = model.get_layer(f"rank_bias_{C.MOVIE_IDX}")
    (weights,) = layer.get_weights()
    layer.set_weights([weights + np.asarray(offsets, weights.dtype).reshape(weights.shape)])


def like_metrics() -> list[keras.metrics.Metric]:
    return [keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")]


def like_metric_key(model: keras.Model, metric: str) -> str:
    """The history key of a like-head metric: Keras prefixes the output name only with several outputs."""
    return f"{LIKE_OUTPUT}_{metric}" if len(model.outputs) > 1 else metric


def first_dense_blocks(model: keras.Model) -> dict[str, slice]:
    """Each input's rows of the `interaction` kernel, from the widths of the `features` inputs."""
    blocks, start = {}, 0
    for name in input_names(model):
        width = int(model.get_layer(f"vector_{name}").output.shape[-1])
        blocks[name] = slice(start, start + width)
        start += width
    return blocks


def input_names(model: keras.Model) -> list[str]:
    return [tensor.name for tensor in model.inputs]
