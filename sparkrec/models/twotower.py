"""The two-tower model: a user vector from the user's rating history, a movie vector from the movie's features.

Ranking score = dot(user vector, movie vector) + movie bias, so ranking the
whole catalogue for a block of users is one matrix product. The like and
rating heads read both vectors and their elementwise product.

- User tower: the mean embedding of the movies the user liked, of those they
  disliked, and the log of both counts, through an MLP. There is no user id
  embedding: every user, trained on or not, is placed by their history alone
  (an id embedding did not rank better, docs/results.md, and would leave
  users outside the training sample with less than the others).
- Movie tower: the movie's id embedding (zero for a movie outside the
  vocabulary), its genre flags, release year and top tags, through an MLP;
  computable once per catalogue movie from prepare's movies/ table.

`build` returns the saved model: a functional Keras model over one (user
history, movie) pair per row with outputs `score`, `like` and `rating`, its
towers and heads nested models named `user_tower`, `movie_tower`,
`like_head`. `Trainer` trains those same layers with a softmax over the
whole catalogue, or over sampled candidates (`sparkrec.train.candidates`): each
example is a user's history and a set of target movies (`sparkrec.train.history`),
the targets' log-probability among every movie not in the history is the
ranking loss, and the like and rating heads are trained on the targets'
labels beside it.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from sparkrec.core import columns as C
from sparkrec.core import metrics
from sparkrec.models.pairwise import GENRE_FLAGS, INPUT_COLUMNS, TAG_IDX, Rescale
from sparkrec.models.towers import HISTORY_LIKE, HISTORY_MOVIE, MODEL_NAME, SCORE_OUTPUT, USER_INPUTS, Dense, TwoTower

MOVIE_INPUTS = (C.MOVIE_IDX, C.YEAR_IDX, GENRE_FLAGS, TAG_IDX)
LIKE_OUTPUT = C.LIKE
RATING_OUTPUT = C.RATING
# Logit of a movie the softmax must not pick (in the history, or the unknown index).
EXCLUDED = -1e9


@keras.saving.register_keras_serializable(package="sparkrec")
class IndexEmbedding(layers.Embedding):
    """An Embedding whose index 0 (unknown, absent or padding) always looks up the zero vector."""

    def call(self, inputs):
        rows = super().call(inputs)
        return rows * ops.expand_dims(ops.cast(ops.not_equal(inputs, C.UNKNOWN_INDEX), rows.dtype), -1)

    def compute_mask(self, inputs, mask=None):
        return None


@keras.saving.register_keras_serializable(package="sparkrec")
class HistoryPool(layers.Layer):
    """[mean liked row, mean disliked row, log(1 + liked count), log(1 + disliked count)] of a padded history.

    Inputs: the history's movie indices (B, H; 0 is an empty slot) and like
    labels (B, H). The layer owns the history's embedding table and pools
    only the filled slots, never the padded (B, H, d) block: histories run
    from one rating to hundreds. The means are one fused sparse segment mean
    (two segments per user, liked then disliked), which neither gathers the
    filled slots' rows into a block of their own nor, backwards, hands the
    optimizer a gradient per slot: on ML-20M a separate gather and segment sum
    made the user tower most of a training step (docs/benchmarks.md). An
    empty group pools to zeros.
    """

    def __init__(self, vocabulary: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary, self.dim = vocabulary, dim

    def build(self, input_shape):
        self.embeddings = self.add_weight(shape=(self.vocabulary, self.dim), initializer="he_normal", name="embeddings")

    def call(self, inputs):
        movies, likes = inputs
        users = tf.shape(movies)[0]
        present = tf.not_equal(movies, C.UNKNOWN_INDEX)
        filled_slots = tf.cast(present, self.compute_dtype)
        likes = tf.cast(likes, self.compute_dtype) * filled_slots
        liked_count = tf.reduce_sum(likes, axis=1, keepdims=True)
        disliked_count = tf.reduce_sum(filled_slots, axis=1, keepdims=True) - liked_count
        filled = tf.where(present)
        # Segment 2u holds user u's liked slots, 2u + 1 the others; the op wants them sorted.
        segment = 2 * filled[:, 0] + tf.cast(tf.equal(tf.gather_nd(likes, filled), 0.0), tf.int64)
        order = tf.argsort(segment, stable=True)
        means = tf.sparse.segment_mean(
            self.embeddings,
            tf.gather(tf.gather_nd(movies, filled), order),
            tf.gather(segment, order),
            num_segments=2 * users,
        )
        return tf.concat(
            [tf.reshape(means, [users, 2 * self.dim]), tf.math.log1p(liked_count), tf.math.log1p(disliked_count)],
            axis=1,
        )

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 2 * self.dim + 2)

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary, "dim": self.dim}


def _mlp(x, hidden: int, dim: int, name: str):
    x = layers.Dense(hidden, activation="relu", name=f"{name}_hidden")(x)
    return layers.Dense(dim, name=f"{name}_vector")(x)


def user_tower(vocab_sizes: dict[str, int], dim: int, hidden: int) -> keras.Model:
    movies = keras.Input(shape=(None,), dtype="int32", name=HISTORY_MOVIE)
    likes = keras.Input(shape=(None,), dtype="float32", name=HISTORY_LIKE)
    features = HistoryPool(vocab_sizes["movie"], dim, name="history_pool")([movies, likes])
    return keras.Model([movies, likes], _mlp(features, hidden, dim, "user"), name="user_tower")


def movie_tower(vocab_sizes: dict[str, int], dim: int, hidden: int) -> keras.Model:
    inputs = {
        name: keras.Input(
            shape=(len(INPUT_COLUMNS[name]),), dtype="float32" if name == GENRE_FLAGS else "int32", name=name
        )
        for name in MOVIE_INPUTS
    }
    movie = IndexEmbedding(vocab_sizes["movie"], dim, embeddings_initializer="he_normal", name="movie_embedding")(
        inputs[C.MOVIE_IDX]
    )
    year = IndexEmbedding(vocab_sizes["year"], dim, name="year_embedding")(inputs[C.YEAR_IDX])
    tags = IndexEmbedding(vocab_sizes["tag"], dim, name="tag_embedding")(inputs[TAG_IDX])
    genres = layers.Dense(dim, use_bias=False, name="genre_vector")(inputs[GENRE_FLAGS])
    features = layers.Concatenate(name="movie_features")(
        [
            layers.Reshape((dim,))(movie),
            layers.Reshape((dim,))(year),
            layers.GlobalAveragePooling1D(name="tag_vector")(tags),
            genres,
        ]
    )
    bias = IndexEmbedding(vocab_sizes["movie"], 1, embeddings_initializer="zeros", name="movie_bias")(
        inputs[C.MOVIE_IDX]
    )
    outputs = [_mlp(features, hidden, dim, "movie"), layers.Reshape((1,), name="bias")(bias)]
    return keras.Model([inputs[name] for name in MOVIE_INPUTS], outputs, name="movie_tower")


def like_head(dim: int, hidden: int) -> keras.Model:
    user = keras.Input(shape=(dim,), name="user_vector")
    movie = keras.Input(shape=(dim,), name="movie_vector")
    x = layers.Concatenate()([user, movie, layers.Multiply()([user, movie])])
    x = layers.Dense(hidden, activation="relu", name="head_hidden")(x)
    like = layers.Dense(1, name="like_logit")(x)
    stars = layers.Dense(1, activation="sigmoid", name="rating_unit")(x)
    return keras.Model([user, movie], [like, Rescale(*C.RATING_RANGE, name="stars")(stars)], name="like_head")


def build(vocab_sizes: dict[str, int], dim: int, hidden: int, head_hidden: int) -> keras.Model:
    """The pair model that is saved: one (user history, movie) per row -> score, like, rating."""
    users, movies = user_tower(vocab_sizes, dim, hidden), movie_tower(vocab_sizes, dim, hidden)
    head = like_head(dim, head_hidden)
    inputs = {t.name: t for model in (users, movies) for t in _clone_inputs(model)}
    user_vector = users([inputs[name] for name in USER_INPUTS])
    movie_vector, bias = movies([inputs[name] for name in MOVIE_INPUTS])
    score = layers.Add(name=SCORE_OUTPUT)([layers.Dot(axes=1)([user_vector, movie_vector]), bias])
    like_logit, rating = head([user_vector, movie_vector])
    outputs = {
        SCORE_OUTPUT: score,
        LIKE_OUTPUT: layers.Activation("sigmoid", name=LIKE_OUTPUT)(like_logit),
        RATING_OUTPUT: layers.Identity(name=RATING_OUTPUT)(rating),
    }
    return keras.Model([inputs[name] for name in USER_INPUTS + MOVIE_INPUTS], outputs, name=MODEL_NAME)


def _clone_inputs(model: keras.Model) -> list:
    return [keras.Input(shape=t.shape[1:], dtype=t.dtype, name=t.name) for t in model.inputs]


def parts(model: keras.Model) -> tuple[keras.Model, keras.Model, keras.Model]:
    """The user tower, movie tower and like head of a (built or loaded) two-tower model."""
    return model.get_layer("user_tower"), model.get_layer("movie_tower"), model.get_layer("like_head")


def calibrate_like(model: keras.Model, labels: np.ndarray, like: np.ndarray) -> dict[str, float]:
    """Scales the like head's logit by the factor that best fits `like` (P(like) of held-out rated rows) to `labels`.

    The kernel and bias of its last layer are multiplied by the factor, so the saved model and its
    arrays (`arrays`) carry it without a new layer. Returns the factor and the log loss on those
    rows before and after.
    """
    # heads() gives float64 sigmoids of float32 logits: clipped this close to 0 and 1 they still give the
    # logits back up to about 34 (metrics.EPSILON would cut them at 16, and misstate a confident head's loss).
    p = np.clip(np.asarray(like, dtype=np.float64), 1e-15, 1 - 1e-15)
    logits = np.log(p) - np.log1p(-p)
    scale = metrics.logit_scale(labels, logits)
    layer = parts(model)[2].get_layer("like_logit")
    layer.set_weights([weight * np.asarray(scale, dtype=weight.dtype) for weight in layer.get_weights()])
    return {
        "like_logit_scale": scale,
        "log_loss_before": metrics.log_loss(labels, p),
        "log_loss_after": metrics.log_loss(labels, metrics.sigmoid(scale * logits)),
    }


def movie_table(catalogue: dict[str, np.ndarray], movie_vocab: int) -> dict[str, np.ndarray]:
    """Movie-tower inputs indexed by movie index (row i is movie_idx i; row 0 stays empty).

    `catalogue` holds one row per movies/ row; rows outside the vocabulary
    (movie_idx 0) are not softmax candidates.
    """
    index = catalogue[C.MOVIE_IDX][:, 0]
    table = {}
    for name, values in catalogue.items():
        rows = np.zeros((movie_vocab, values.shape[1]), values.dtype)
        rows[index[index != C.UNKNOWN_INDEX]] = values[index != C.UNKNOWN_INDEX]
        table[name] = rows
    return table


def _masked_mean(values, weights):
    return tf.reduce_sum(values * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


class Trainer(keras.Model):
    """Trains a two-tower model's layers with a softmax over every movie of the vocabulary, or sampled ones.

    Per example: the user vector from the history, scores against every movie
    index (or, when the batch carries candidates, against those, each logit
    minus its logQ correction), the history's movies (and the unknown index)
    excluded; ranking loss = the weighted mean of -log softmax over the
    targets (a liked target weighs 1, a disliked one `dislike_weight`); the
    like and rating heads run on the filled target slots only: the like head's binary
    cross-entropy and the rating head's squared error over the targets, with
    weights `like_weight` and `rating_weight`. There is no L2 term: on the
    embedding rows a step looks up it did not help (docs/results.md).
    """

    def __init__(
        self,
        pair: keras.Model,
        table: dict[str, np.ndarray],
        dislike_weight: float = 0.0,
        like_weight: float = 1.0,
        rating_weight: float = 0.5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.pair = pair
        self.users, self.movies, self.head = parts(pair)
        self.table = [tf.constant(table[name]) for name in MOVIE_INPUTS]
        self.dislike_weight = dislike_weight
        self.like_weight = like_weight
        self.rating_weight = rating_weight
        self.trackers = {
            name: keras.metrics.Mean(name=name) for name in ("loss", "rank_loss", "like_loss", "rating_loss")
        }
        self.like_accuracy = keras.metrics.BinaryAccuracy(name="like_accuracy")
        # Its layers are the pair model's, built already: BackupAndRestore needs a built model.
        self.built = True

    @property
    def metrics(self):
        return [*self.trackers.values(), self.like_accuracy]

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Under a strategy, Keras' fit builds a model from its first batch averaged across the
        # workers (a collective over each worker's batch, which fails on a dict of them; workers'
        # batches differ in shape anyway). This model is built already: only the optimizer's
        # variables remain, built here as Keras would, under the strategy.
        if self._distribute_strategy is None:
            return super()._maybe_symbolic_build(iterator, data_batch)
        if self.optimizer is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)

    def call(self, inputs, training=False):
        return self.users([inputs[name] for name in USER_INPUTS], training=training)

    def candidates(self, batch):
        """(movie-tower inputs, logit correction, target columns, history columns) of the softmax.

        A full softmax's columns are the vocabulary's movie indices; a sampled
        one's are the batch's candidates (`sparkrec.train.candidates`). Column 0 is
        the unknown index either way.
        """
        if "candidate_movie" not in batch:
            return self.table, 0.0, batch["target_movie"], batch[HISTORY_MOVIE]
        rows = [tf.gather(column, batch["candidate_movie"]) for column in self.table]
        return rows, batch["candidate_log_q"], batch["target_position"], batch["history_position"]

    def losses_of(self, batch, training: bool):
        history = batch[HISTORY_MOVIE]
        targets = batch["target_movie"]
        user_vector = self.users([history, batch[HISTORY_LIKE]], training=training)
        movie_inputs, correction, target_columns, history_columns = self.candidates(batch)
        movie_vectors, bias = self.movies(movie_inputs, training=training)
        logits = tf.matmul(user_vector, movie_vectors, transpose_b=True) + tf.transpose(bias) - correction
        # Only the filled history slots that are columns: padding is most of a batch's slots.
        history_cells = tf.where(tf.not_equal(history_columns, 0))
        cells = tf.stack([tf.cast(history_cells[:, 0], tf.int32), tf.gather_nd(history_columns, history_cells)], axis=1)
        excluded = tf.minimum(tf.scatter_nd(cells, tf.ones(tf.shape(cells)[0]), tf.shape(logits)), 1.0)
        unknown = tf.one_hot(0, tf.shape(logits)[1])
        log_probability = tf.nn.log_softmax(logits + EXCLUDED * (excluded + unknown))
        present = tf.cast(tf.not_equal(targets, C.UNKNOWN_INDEX), tf.float32)
        like = batch["target_like"]
        weight = present * (like + self.dislike_weight * (1.0 - like))
        rank_loss = -_masked_mean(tf.gather(log_probability, target_columns, batch_dims=1), weight)
        # The heads run on the filled target slots only.
        target_cells = tf.where(tf.not_equal(targets, C.UNKNOWN_INDEX))
        flat_users = tf.gather(user_vector, target_cells[:, 0])
        flat_targets = tf.gather(movie_vectors, tf.gather_nd(target_columns, target_cells))
        like_logit, rating = self.head([flat_users, flat_targets], training=training)
        flat_like = tf.gather_nd(like, target_cells)
        like_logit = tf.reshape(like_logit, [-1])
        like_loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(flat_like, like_logit))
        stars = tf.gather_nd(batch["target_rating"], target_cells)
        rating_loss = tf.reduce_mean(tf.square(tf.reshape(rating, [-1]) - stars))
        total = rank_loss + self.like_weight * like_loss + self.rating_weight * rating_loss
        return (
            total,
            {"rank_loss": rank_loss, "like_loss": like_loss, "rating_loss": rating_loss},
            (flat_like, tf.sigmoid(like_logit)),
        )

    def train_step(self, batch):
        # Under a multi-worker strategy Keras' optimizer sums the replicas' gradients: each replica's
        # loss (a mean over its part of the global batch) is divided by their count, as Keras' own
        # compute_loss does, so N workers step as one worker on the whole batch does.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            total, parts_, like = self.losses_of(batch, training=True)
            scaled = total / replicas if replicas > 1 else total
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        self.trackers["loss"].update_state(total)
        for name, value in parts_.items():
            self.trackers[name].update_state(value)
        self.like_accuracy.update_state(like[0], like[1])
        results = {metric.name: metric.result() for metric in self.metrics}
        if replicas > 1:
            # Keras averages each worker's logs along axis 0, which a scalar lacks: a (1,) each.
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results


def arrays(model: keras.Model, catalogue: dict[str, np.ndarray]) -> TwoTower:
    """The model as arrays (sparkrec.models.towers), its movie tower run once over `catalogue` (movies/ rows)."""
    users, movies, head = parts(model)

    def dense(part, name: str) -> Dense:
        kernel, bias = part.get_layer(name).get_weights()
        return Dense(kernel.astype(np.float32), bias.astype(np.float32))

    vectors, bias = movies.predict([catalogue[name] for name in MOVIE_INPUTS], batch_size=8192, verbose=0)
    bias = np.asarray(bias, dtype=np.float32).reshape(-1)
    # A movie outside the vocabulary has no rating to learn a bias from: it gets the least popular one's.
    unknown = catalogue[C.MOVIE_IDX][:, 0] == C.UNKNOWN_INDEX
    if unknown.any() and not unknown.all():
        bias[unknown] = bias[~unknown].min()
    return TwoTower(
        history_embedding=users.get_layer("history_pool").get_weights()[0].astype(np.float32),
        user_hidden=dense(users, "user_hidden"),
        user_vector=dense(users, "user_vector"),
        head_hidden=dense(head, "head_hidden"),
        like_logit=dense(head, "like_logit"),
        rating_unit=dense(head, "rating_unit"),
        movies=np.ascontiguousarray(vectors, dtype=np.float32),
        movie_bias=bias,
    )
