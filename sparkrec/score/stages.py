"""Scoring: each user's top-K unwatched catalogue movies, computed in Spark pandas UDFs.

Two ways to score a user against the catalogue, chosen per model:

- the fast path: the paper's model starts with a Dense layer over the
  concatenation of per-input embeddings, and a Dense layer over a concatenation
  is the sum of one projection per part (dropout is the identity at inference).
  So the user part is projected once per user-vocabulary entry and the movie
  parts once per catalogue movie, and scoring a block of users is dense array
  work: user (B, H) + movies (M, H) -> the remaining layers -> (B, M) keys.
- the generic path: the Keras model itself, called on explicit (user, movie)
  candidate pairs; slow, but it needs nothing of the model's structure.

Both feed the same exact top-K selection: score descending, ties by movieId
ascending, watched movies never selected.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sparkrec.core import columns as C
from sparkrec.core import console, metrics, storage
from sparkrec.models import towers as retrieval
from sparkrec.prepare import vocab
from sparkrec.core.config import ConfigError, to_dict
from sparkrec.core.runinfo import StageTimer, library_versions

# Output columns of the scoring job (the input columns come from columns.py).
RANK = "rank"  # 1 = best
SCORE = "score"  # the model's output for the pair
WATCHED = "watched"  # array<int>: the catalogue movies a user has rated
LIKED = "liked"  # array<int>: those of them the user liked
RECOMMENDATION_COLUMNS = (C.USER_ID, RANK, C.MOVIE_ID, C.TITLE, C.GENRES, SCORE)
SCORED_SCHEMA = T.StructType(
    [
        T.StructField(C.USER_ID, T.IntegerType(), False),
        T.StructField(RANK, T.IntegerType(), False),
        T.StructField(C.MOVIE_ID, T.IntegerType(), False),
        T.StructField(SCORE, T.FloatType(), False),
    ]
)

MODEL_FILE = "model.keras"
PATHS = ("auto", "fast", "generic")
EXPORTS = ("none", "csv", "json")


class ScoreError(ValueError):
    """Inputs the scoring job cannot use: a missing table, a model that does not fit the data."""


@dataclass
class ScoreConfig:
    """Settings of the scoring job (conf/score.yaml documents each)."""

    users: str = "sample"
    top_k: int = 10
    path: str = "auto"
    unknown_users: str = "score"
    limit_users: int = 0
    output_name: str = "auto"
    arrow_batch_users: int = 2048
    block_users: int = 4
    tower_block_users: int = 256
    generic_batch_pairs: int = 65536
    partitions: int = 0
    export: str = "none"

    def validate(self) -> None:
        choices = {"users": ("sample", "all"), "path": PATHS, "unknown_users": ("score", "skip"), "export": EXPORTS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}: expected one of {list(allowed)}, got {getattr(self, name)!r}")
        positive = ("top_k", "arrow_batch_users", "block_users", "tower_block_users", "generic_batch_pairs")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if self.limit_users < 0 or self.partitions < 0:
            raise ConfigError("limit_users and partitions must be >= 0 (0: no limit, automatic)")


# --- the layers after the first Dense, as numpy operations -------------------
#
# An operation is a tuple: ("dense", kernel, bias), ("affine", scale, offset)
# or (activation name,). Only these are understood; a model with any other
# layer after its first Dense goes to the generic path.

ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh")


_ELEMENTWISE = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": metrics.sigmoid,
    "tanh": np.tanh,
}


def apply(ops: tuple, x: np.ndarray) -> np.ndarray:
    """Run `ops` on a batch of row vectors `x` (n, features), in x's dtype."""
    for op in ops:
        kind = op[0]
        if kind == "dense":
            x = x @ op[1].astype(x.dtype) + op[2].astype(x.dtype)
        elif kind == "affine":
            x = x * x.dtype.type(op[1]) + x.dtype.type(op[2])
        else:
            x = _ELEMENTWISE[kind](x)
    return x


def _non_decreasing(op: tuple) -> bool:
    return op[0] in ACTIVATIONS or (op[0] == "affine" and op[1] >= 0)


def split_monotone_tail(ops: tuple) -> tuple[tuple, tuple]:
    """(to_key, tail) with ops == to_key + tail and tail elementwise and non-decreasing.

    Top-K is chosen on the key and the tail (sigmoid, rating rescale) is then
    applied to a few hundred survivors per user instead of every pair.
    """
    denses = [i for i, op in enumerate(ops) if op[0] == "dense"]
    cut = denses[-1] + 1 if denses else 0
    tail = ops[cut:]
    if all(_non_decreasing(op) for op in tail):
        return ops[:cut], tail
    return ops, ()


# --- the factorized model ---------------------------------------------------


@dataclass
class Factorized:
    """The model as projection tables and the layers after its first Dense.

    key(u, m) = to_key(users[u] + movies[m]) + user_offset[u] + movie_offset[m]
    score(u, m) = tail(key(u, m))

    `users` has one row per user-vocabulary index, `movies` one per catalogue
    movie (sorted by movieId), float32, the first Dense's bias folded into
    `movies`. The offsets are terms added to the Dense(1) output that depend on
    one side only, such as per-user and per-movie bias embeddings.
    """

    users: np.ndarray
    movies: np.ndarray
    to_key: tuple
    tail: tuple
    user_offset: np.ndarray
    movie_offset: np.ndarray

    def relu_sum_weights(self) -> np.ndarray | None:
        """The output weights when to_key is relu -> Dense(1), the paper's head; else None."""
        if len(self.to_key) == 2 and self.to_key[0] == ("relu",) and self.to_key[1][0] == "dense":
            kernel = self.to_key[1][1]
            if kernel.shape[1] == 1:
                return kernel[:, 0].astype(np.float32)
        return None


# --- kernels: a block of users against the whole catalogue ------------------


class ReluSumKernel:
    """key(u, m) = sum_h w_h relu(u_h + m_h) + bias + offsets: the paper's relu -> Dense(1) head.

    w relu(x) is max(w x, 0) for w >= 0 and min(w x, 0) otherwise, and
    max(a + b, 0) = max(a, -b) + b; so with a = w u and b = w m scaled once,
    each hidden unit costs two passes over the block (a max or min against
    the negated movie column, then an add) and sum_h b_h joins the bias.
    """

    def __init__(self, model: Factorized):
        weights = model.relu_sum_weights()
        bias = np.float32(model.to_key[1][2][0])
        scaled = model.movies * weights
        self.users = model.users * weights
        self.user_offset = model.user_offset
        self.negated = np.ascontiguousarray(-scaled.T)
        self.base = (scaled.sum(axis=1, dtype=np.float32) + bias + model.movie_offset).astype(np.float32)
        self.passes = [np.maximum if w >= 0 else np.minimum for w in weights]
        self._buffers: dict[int, np.ndarray] = {}

    def __call__(self, user_rows: np.ndarray) -> np.ndarray:
        users = self.users[user_rows]
        keys = np.empty((len(user_rows), len(self.base)), dtype=np.float32)
        np.add(self.base, self.user_offset[user_rows, None], out=keys)
        buffer = self._buffer(len(user_rows))
        for h, extreme in enumerate(self.passes):
            extreme(self.negated[h], users[:, h : h + 1], out=buffer)
            keys += buffer
        return keys

    def _buffer(self, rows: int) -> np.ndarray:
        if rows not in self._buffers:
            self._buffers[rows] = np.empty((rows, len(self.base)), dtype=np.float32)
        return self._buffers[rows]


class DenseKernel:
    """Any numpy-expressible head: (users, movie chunk, H) sums through the layers."""

    def __init__(self, model: Factorized, chunk_pairs: int = 1 << 15):
        self.model = model
        self.chunk_pairs = chunk_pairs

    def __call__(self, user_rows: np.ndarray) -> np.ndarray:
        model = self.model
        users = model.users[user_rows]
        keys = np.empty((len(user_rows), len(model.movies)), dtype=np.float32)
        step = max(1, self.chunk_pairs // len(user_rows))
        for start in range(0, len(model.movies), step):
            chunk = model.movies[start : start + step]
            hidden = (users[:, None, :] + chunk[None, :, :]).reshape(-1, chunk.shape[1])
            keys[:, start : start + len(chunk)] = apply(model.to_key, hidden).reshape(len(user_rows), -1)
        keys += model.user_offset[user_rows, None]
        keys += model.movie_offset
        return keys


def kernel_for(model: Factorized):
    """The relu-sum kernel when the head allows it, the dense one otherwise."""
    return ReluSumKernel(model) if model.relu_sum_weights() is not None else DenseKernel(model)


# --- exact top-K ------------------------------------------------------------

# The keep-th best key among SAMPLE_COLUMNS evenly spread columns bounds each
# row's top-K from below with a wide margin, so only a few hundred survivors
# per row are sorted instead of the whole catalogue.
SAMPLE_COLUMNS = 1024
_LOWEST = np.float32(np.finfo(np.float32).min)


@functools.lru_cache(maxsize=4)
def sample_columns(columns: int) -> np.ndarray:
    return np.linspace(0, columns - 1, min(SAMPLE_COLUMNS, columns)).astype(np.int64)


def sample_thresholds(keys: np.ndarray, k: int) -> np.ndarray:
    """Per row, a key that about 4k + 8 * columns / SAMPLE_COLUMNS of the row's keys reach."""
    columns = keys.shape[1]
    picks = sample_columns(columns)
    keep = min(len(picks), -(-len(picks) * 4 * k // columns) + 8)
    sampled = np.partition(keys[:, picks], len(picks) - keep, axis=1)
    return np.maximum(sampled[:, len(picks) - keep], _LOWEST)


def _tail_scores(tail: tuple, keys: np.ndarray) -> np.ndarray:
    # In float64 the tail stays monotone to float32 precision; it only sees survivors.
    return apply(tail, keys.astype(np.float64)[:, None])[:, 0].astype(np.float32)


def _select(keys: np.ndarray, k: int, tail: tuple, thresholds: np.ndarray):
    """Top-k among the keys >= each row's threshold, and whether that is provably the row's top-k.

    Excluded keys are below the threshold, so their scores are at most
    tail(threshold): the row is exact when it kept k candidates and
    tail(threshold) is below its k-th score, or when nothing finite was
    excluded (-inf keys, the watched movies, are never candidates).
    """
    # A 2-D nonzero builds its indices slowly; the 1-D one on a sparse mask is fast.
    rows, cols = np.divmod(np.flatnonzero(keys >= thresholds[:, None]), keys.shape[1])
    scores = _tail_scores(tail, keys[rows, cols])
    order = np.lexsort((cols, -scores, rows))
    rows, cols, scores = rows[order], cols[order], scores[order]
    ranks = np.arange(len(rows)) - np.searchsorted(rows, np.arange(len(keys)))[rows]
    kept = ranks < k
    kth = np.full(len(keys), np.inf, dtype=np.float32)
    kth[rows[ranks == k - 1]] = scores[ranks == k - 1]
    enough = np.bincount(rows, minlength=len(keys)) >= k
    exact = (thresholds == _LOWEST) | (enough & (_tail_scores(tail, thresholds) < kth))
    return rows[kept], cols[kept], scores[kept], ranks[kept], exact


def top_k(keys: np.ndarray, k: int, tail: tuple = ()) -> tuple[np.ndarray, ...]:
    """Each row's best k columns by tail(key) descending, then column ascending; -inf keys never.

    Returns (row, column, score, rank) arrays ordered by row then rank (0-based).
    With the catalogue sorted by movieId, column order is movieId order.
    """
    rows, cols, scores, ranks, exact = _select(keys, k, tail, sample_thresholds(keys, k))
    if exact.all():
        return rows, cols, scores, ranks
    redo = np.flatnonzero(~exact)
    again = _select(keys[redo], k, tail, np.full(len(redo), _LOWEST))
    keep = exact[rows]
    merged = [
        np.concatenate([part[keep], extra])
        for part, extra in zip((rows, cols, scores, ranks), (redo[again[0]], *again[1:4]))
    ]
    order = np.lexsort((merged[3], merged[0]))
    return tuple(part[order] for part in merged)


# --- scorers: keys of a block of users against the catalogue -----------------


@dataclass(frozen=True)
class Block:
    """A block of users as every scorer reads it: their indices, and their watched movies as catalogue cells."""

    user_idx: np.ndarray  # (users,) int64
    watched_rows: np.ndarray  # the row (user) of each watched cell
    watched_cols: np.ndarray  # its catalogue column, ascending within each row
    watched_liked: np.ndarray  # bool: whether the user liked it

    @property
    def offsets(self) -> np.ndarray:
        """CSR offsets of the watched cells by row."""
        return np.searchsorted(self.watched_rows, np.arange(len(self.user_idx) + 1))


class FastScorer:
    """The fast path: a numpy kernel over the factorized tables."""

    vector_seconds = 0.0  # it has no user tower

    def __init__(self, model: Factorized, movie_ids: np.ndarray):
        self.kernel = kernel_for(model)
        self.tail = model.tail
        self.movie_ids = movie_ids

    def keys(self, block: Block) -> np.ndarray:
        keys = self.kernel(block.user_idx)
        keys[block.watched_rows, block.watched_cols] = -np.inf
        return keys


class TwoTowerScorer:
    """The two-tower model: each user's vector from their watched (rated) movies, dotted with every movie's."""

    tail = ()

    def __init__(self, towers: retrieval.TwoTower, movie_ids: np.ndarray, movie_idx: np.ndarray):
        self.towers = towers
        self.movie_ids = movie_ids
        self.movie_idx = movie_idx  # each catalogue column's movie index: the history the user tower reads
        self.vector_seconds = 0.0  # CPU time in the user tower, reported apart from the ranking

    def vectors(self, block: Block) -> np.ndarray:
        started = time.process_time()
        history = self.movie_idx[block.watched_cols]
        vectors = self.towers.user_vectors(block.offsets, history, block.watched_liked.astype(np.float32))
        self.vector_seconds += time.process_time() - started
        return vectors

    def keys(self, block: Block) -> np.ndarray:
        keys = self.towers.keys(self.vectors(block))
        keys[block.watched_rows, block.watched_cols] = -np.inf
        return keys


class KerasScorer:
    """The generic path: the (single-output) Keras model on every unwatched (user, movie) pair."""

    tail = ()
    vector_seconds = 0.0  # it has no user tower

    def __init__(self, model, catalogue: dict[str, np.ndarray], movie_ids: np.ndarray, batch_pairs: int):
        self.model = model
        self.catalogue = catalogue
        self.movie_ids = movie_ids
        self.batch_pairs = batch_pairs

    def keys(self, block: Block) -> np.ndarray:
        user_idx = block.user_idx
        movies = len(self.movie_ids)
        candidate = np.ones((len(user_idx), movies), dtype=bool)
        candidate[block.watched_rows, block.watched_cols] = False
        rows, cols = np.divmod(np.flatnonzero(candidate), movies)
        keys = np.full((len(user_idx), movies), -np.inf, dtype=np.float32)
        for start in range(0, len(rows), self.batch_pairs):
            r, c = rows[start : start + self.batch_pairs], cols[start : start + self.batch_pairs]
            feed = {name: values[c] for name, values in self.catalogue.items()}
            feed[C.USER_IDX] = user_idx[r].reshape(-1, 1).astype(np.int32)
            keys[r, c] = np.asarray(self.model.predict_on_batch(feed), dtype=np.float32).reshape(-1)
        return keys


def _cells(lists: pd.Series, movie_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of each user's listed movies in the catalogue, sorted by row then column.

    Sorted so that what is summed over a user's movies (a two-tower user vector) does not depend
    on the order Spark collected them in. Movies absent from the catalogue cannot be recommended
    anyway and are dropped.
    """
    lengths = lists.map(len).to_numpy(dtype=np.int64)
    ids = np.concatenate([np.asarray(w, dtype=np.int64) for w in lists]) if lengths.sum() else np.empty(0, np.int64)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    cols = np.minimum(np.searchsorted(movie_ids, ids), len(movie_ids) - 1)
    found = movie_ids[cols] == ids
    order = np.lexsort((cols[found], rows[found]))
    return rows[found][order], cols[found][order]


def watched_positions(users: pd.DataFrame, movie_ids: np.ndarray) -> tuple[np.ndarray, ...]:
    """(offsets, rows, columns, liked): each user's watched movies as catalogue cells, users in order.

    `liked` flags the cells in the user's LIKED list, when the frame has one.
    """
    rows, cols = _cells(users[WATCHED], movie_ids)
    liked = np.zeros(len(rows), bool)
    if LIKED in users:
        liked_rows, liked_cols = _cells(users[LIKED], movie_ids)
        cells = rows * len(movie_ids) + cols
        liked = np.isin(cells, liked_rows * len(movie_ids) + liked_cols)
    offsets = np.searchsorted(rows, np.arange(len(users) + 1))
    return offsets, rows, cols, liked


def recommend_batch(scorer, users: pd.DataFrame, k: int, block: int) -> pd.DataFrame:
    """Top-k recommendations of a pandas batch of (userId, user_idx, watched[, liked]) rows."""
    movie_ids = scorer.movie_ids
    user_ids = users[C.USER_ID].to_numpy(dtype=np.int32)
    user_idx = users[C.USER_IDX].to_numpy(dtype=np.int64)
    offsets, watched_rows, watched_cols, watched_liked = watched_positions(users, movie_ids)
    parts = []
    for start in range(0, len(users), block):
        stop = min(start + block, len(users))
        span = slice(offsets[start], offsets[stop])
        cells = Block(user_idx[start:stop], watched_rows[span] - start, watched_cols[span], watched_liked[span])
        keys = scorer.keys(cells)
        rows, cols, scores, ranks = top_k(keys, k, scorer.tail)
        parts.append((rows + start, cols, scores, ranks))
    rows, cols, scores, ranks = (np.concatenate(p) for p in zip(*parts)) if parts else [np.empty(0, np.int64)] * 4
    return pd.DataFrame(
        {
            C.USER_ID: user_ids[rows],
            RANK: (ranks + 1).astype(np.int32),
            C.MOVIE_ID: movie_ids[cols].astype(np.int32),
            SCORE: np.asarray(scores, dtype=np.float32),
        }
    )


def top_k_lists(scorer, users: pd.DataFrame, k: int, block: int) -> dict[int, np.ndarray]:
    """userId -> the movieIds of the user's top-k, best first."""
    recommended = recommend_batch(scorer, users, k, block)
    return {int(user): group[C.MOVIE_ID].to_numpy() for user, group in recommended.groupby(C.USER_ID, sort=False)}


# --- reading the Keras model -------------------------------------------------
#
# Keras (and sparkrec.models.pairwise, which imports it) is imported inside these
# functions: fast-path workers never pay for TensorFlow. Keras 3 exposes a
# functional model's graph only through `_keras_history` and `_inbound_nodes`;
# the structure checks below use nothing else of its internals.

_IDENTITY_LAYERS = ("Dropout", "GaussianDropout", "GaussianNoise", "AlphaDropout", "SpatialDropout1D")


class NotFactorizable(Exception):
    """The model's structure does not allow the fast path; the message says why."""


def load_keras_model(data: bytes):
    """A model from the bytes of a .keras file, loaded in safe mode (no arbitrary code)."""
    from sparkrec.models import pairwise as model

    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        # The saved optimizer state does not match a fresh optimizer's; scoring never uses it.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        path = os.path.join(directory, MODEL_FILE)
        with open(path, "wb") as handle:
            handle.write(data)
        return model.load(path)


# output_name=auto ranks by the first of these the model has: the rank head
# (P(rated and liked)) was trained for ranking the unrated catalogue, the like
# head (P(like | rated)) was not.
AUTO_OUTPUTS = ("rank", "like")


def named_outputs(model) -> dict:
    """The model's output tensors by name."""
    outputs = model.output
    if isinstance(outputs, dict):
        return dict(outputs)
    if isinstance(outputs, (list, tuple)):
        return {t._keras_history.operation.name: t for t in outputs}
    return {outputs._keras_history.operation.name: outputs}


def output_for(model, output_name: str) -> str:
    """The output that `output_name` selects: the only one, the named one, or for "auto" the first of AUTO_OUTPUTS."""
    named = named_outputs(model)
    if len(named) == 1:
        return next(iter(named))
    if output_name == "auto":
        output_name = next((name for name in AUTO_OUTPUTS if name in named), output_name)
    if output_name not in named:
        raise ScoreError(f"model has outputs {sorted(named)}; set output_name to one of them (or auto)")
    return output_name


def scored_model(model, output_name: str):
    """A single-output view of `model`: the output that `output_name` selects (see output_for)."""
    import keras

    if not isinstance(model.output, (dict, list, tuple)):
        return model
    return keras.Model(model.inputs, named_outputs(model)[output_for(model, output_name)])


def catalogue_inputs(model, movies: pd.DataFrame) -> dict[str, np.ndarray]:
    """Every movie-side model input, one row per catalogue movie, shaped and typed as the input."""
    from sparkrec.models.pairwise import INPUT_COLUMNS, USER_INPUTS

    arrays = {}
    for tensor in model.inputs:
        if tensor.name in USER_INPUTS + retrieval.USER_INPUTS:
            continue
        columns = INPUT_COLUMNS.get(tensor.name, (tensor.name,))
        missing = [c for c in columns if c not in movies.columns]
        if missing:
            raise ScoreError(f"model input {tensor.name!r} reads {missing}, which are not columns of movies/")
        values = movies[list(columns)].to_numpy()
        arrays[tensor.name] = values.reshape(len(movies), *tensor.shape[1:]).astype(tensor.dtype)
    return arrays


def check_embeddings(model, vocab_sizes: dict[str, int]) -> None:
    """Each embedding fed straight by an index input must have one row per vocabulary index."""
    from sparkrec.models.pairwise import INPUT_VOCABULARY

    for layer in model.layers:
        if type(layer).__name__ != "Embedding":
            continue
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                name = tensor._keras_history.operation.name
                vocabulary = INPUT_VOCABULARY.get(name)
                if vocabulary is not None and layer.input_dim != vocab_sizes[vocabulary]:
                    raise ScoreError(
                        f"model/vocabulary mismatch: embedding {layer.name!r} of {name} has {layer.input_dim} rows, "
                        f"vocab/{vocabulary} has {vocab_sizes[vocabulary]} indices"
                    )


def _producer(tensor):
    """The layer that made `tensor`, and that call's input tensors."""
    history = tensor._keras_history
    layer = history.operation
    return layer, list(layer._inbound_nodes[history.node_index].input_tensors)


def _inputs_of(tensor) -> frozenset[str]:
    """Names of the model inputs `tensor` depends on."""
    layer, parents = _producer(tensor)
    if not parents:
        return frozenset([layer.name])
    return frozenset().union(*(_inputs_of(p) for p in parents))


def _activation_ops(name: str) -> tuple:
    if name == "linear":
        return ()
    if name in ACTIVATIONS:
        return ((name,),)
    raise NotFactorizable(f"activation {name!r} has no numpy form here")


def _layer_ops(layer) -> tuple | None:
    """The inference-time numpy operations of a Dense or elementwise layer; None for any other layer."""
    from sparkrec.models.pairwise import Rescale

    kind = type(layer).__name__
    if kind in _IDENTITY_LAYERS:
        return ()
    if kind == "Activation":
        return _activation_ops(layer.get_config()["activation"])
    if kind == "Dense":
        kernel, bias = dense_weights(layer)
        dense = ("dense", kernel.astype(np.float32), bias.astype(np.float32))
        return (dense,) + _activation_ops(layer.get_config()["activation"])
    if isinstance(layer, Rescale):
        return (("affine", layer.maximum - layer.minimum, layer.minimum),)
    return None


def dense_weights(layer) -> tuple[np.ndarray, np.ndarray]:
    """A Dense layer's kernel and bias (zeros without one), as float64."""
    kernel = np.asarray(layer.kernel.numpy(), dtype=np.float64)
    bias = np.asarray(layer.bias.numpy(), dtype=np.float64) if layer.use_bias else np.zeros(kernel.shape[1])
    return kernel, bias


def _side(tensor) -> str:
    """'user', 'movie' or 'both': which side's inputs `tensor` depends on."""
    names = _inputs_of(tensor)
    if names == {C.USER_IDX}:
        return "user"
    return "both" if C.USER_IDX in names else "movie"


def _walk_back(tensor) -> tuple[object, object, tuple]:
    """From `tensor`, back over Dense and elementwise layers to the first Dense.

    Returns (the first Dense, its input, the operations after its matmul in forward order).
    """
    ops: tuple = ()
    while True:
        layer, parents = _producer(tensor)
        layer_ops = _layer_ops(layer)
        if layer_ops is None or len(parents) != 1:
            raise NotFactorizable(f"layer {layer.name!r} ({type(layer).__name__}) is not a Dense or elementwise layer")
        if type(layer).__name__ == "Dense" and type(_skip_identity(parents[0])[0]).__name__ == "Concatenate":
            return layer, parents[0], layer_ops[1:] + ops
        ops = layer_ops + ops
        tensor = parents[0]


def _skip_identity(tensor):
    """The producer of `tensor` once identity-at-inference layers (dropout) are skipped, and its inputs."""
    layer, parents = _producer(tensor)
    while type(layer).__name__ in _IDENTITY_LAYERS:
        layer, parents = _producer(parents[0])
    return layer, parents


def _peel_tail(tensor) -> tuple[tuple, object]:
    """Elementwise layers from the output back: (their operations, the tensor before them)."""
    tail: tuple = ()
    while True:
        layer, parents = _producer(tensor)
        layer_ops = _layer_ops(layer)
        if layer_ops is None or type(layer).__name__ == "Dense" or len(parents) != 1:
            return tail, tensor
        tail = layer_ops + tail
        tensor = parents[0]


def _structure(model):
    """The pieces of a factorizable model, or NotFactorizable.

    Accepted shape: output = tail(key), key = head(Dense(concat(parts))) [+ one-sided terms],
    every part and every added term depending on the user input only or on movie inputs only.
    """
    if model.outputs[0].shape[-1] != 1:
        raise NotFactorizable("the scored output is not a single value per pair")
    tail, key = _peel_tail(model.outputs[0])
    layer, parents = _producer(key)
    offsets = []
    if type(layer).__name__ == "Add":
        sides = [_side(p) for p in parents]
        if sides.count("both") != 1:
            raise NotFactorizable(f"the output sum {layer.name!r} needs exactly one user-movie term")
        offsets = [p for p, side in zip(parents, sides) if side != "both"]
        key = parents[sides.index("both")]
        if not all(_non_decreasing(op) for op in tail):
            raise NotFactorizable("the layers after the output sum are not monotone")
        first, concatenated, to_key = _walk_back(key)
    else:
        first, concatenated, head = _walk_back(key)
        to_key, tail = split_monotone_tail(head + tail)
    concat, parts = _skip_identity(concatenated)
    if concat.get_config().get("axis", -1) not in (-1, 1):
        raise NotFactorizable("the concatenation is not along the feature axis")
    sides = [_side(p) for p in parts]
    if "both" in sides:
        raise NotFactorizable("a concatenated part mixes user and movie inputs")
    return first, parts, sides, to_key, tail, offsets


def _evaluate(model, tensors: list, feed: dict[str, np.ndarray], rows: int) -> list[np.ndarray]:
    """Values of intermediate `tensors` of `model` for the given inputs, as float64 (rows, width)."""
    import keras

    if not tensors:
        return []
    names = sorted(frozenset().union(*(_inputs_of(t) for t in tensors)))
    inputs = {t.name: t for t in model.inputs}
    sub = keras.Model([inputs[n] for n in names], list(tensors))
    values = sub.predict({n: feed[n] for n in names}, batch_size=8192, verbose=0)
    values = values if isinstance(values, list) else [values]
    return [np.asarray(v, dtype=np.float64).reshape(rows, -1) for v in values]


def factorize(model, user_count: int, catalogue: dict[str, np.ndarray]) -> Factorized:
    """The fast-path form of a single-output model, or NotFactorizable saying why not."""
    first, parts, sides, to_key, tail, offsets = _structure(model)
    movies = len(next(iter(catalogue.values()))) if catalogue else 0
    user_input = next((t for t in model.inputs if t.name == C.USER_IDX), None)
    if user_input is None:
        raise NotFactorizable(f"the model has no {C.USER_IDX} input")
    feed = dict(catalogue)
    feed[C.USER_IDX] = np.arange(user_count, dtype=np.int32).reshape(user_count, *user_input.shape[1:])
    kernel, bias = dense_weights(first)
    widths = np.cumsum([0] + [p.shape[-1] for p in parts])
    users = np.zeros((user_count, kernel.shape[1]))
    items = np.tile(bias, (movies, 1))
    by_side = {"user": (users, user_count), "movie": (items, movies)}
    for side, (table, rows) in by_side.items():
        chosen = [i for i, s in enumerate(sides) if s == side]
        for i, value in zip(chosen, _evaluate(model, [parts[i] for i in chosen], feed, rows)):
            table += value @ kernel[widths[i] : widths[i + 1]]
    user_offset, movie_offset = np.zeros(user_count), np.zeros(movies)
    for offset in offsets:
        side = _side(offset)
        target = user_offset if side == "user" else movie_offset
        (value,) = _evaluate(model, [offset], feed, len(target))
        target += value[:, 0]
    return Factorized(
        users=users.astype(np.float32),
        movies=items.astype(np.float32),
        to_key=to_key,
        tail=tail,
        user_offset=user_offset.astype(np.float32),
        movie_offset=movie_offset.astype(np.float32),
    )


# --- what the workers receive, and their per-process cache --------------------


@dataclass
class Payload:
    """Everything a Python worker needs to score, broadcast once per job.

    The fast path ships the factorized tables (or a two-tower model's arrays)
    only, so its workers never import TensorFlow; the generic path ships the
    model file and the catalogue's model inputs.
    """

    key: tuple  # (model path, model sha256, data path, path, output name): what the scorer is built from
    movie_ids: np.ndarray  # catalogue movieIds, ascending: column j of every score matrix
    factorized: Factorized | None = None
    towers: retrieval.TwoTower | None = None
    movie_idx: np.ndarray | None = None  # each catalogue column's movie index (two-tower histories)
    model_bytes: bytes | None = None
    catalogue: dict[str, np.ndarray] = field(default_factory=dict)
    output_name: str = "like"
    batch_pairs: int = 65536


def build_scorer(payload: Payload):
    """The two-tower scorer, a FastScorer from the factorized tables, else a KerasScorer from the model file."""
    if payload.towers is not None:
        return TwoTowerScorer(payload.towers, payload.movie_ids, payload.movie_idx)
    if payload.factorized is not None:
        return FastScorer(payload.factorized, payload.movie_ids)
    _single_threaded_tensorflow()
    model = scored_model(load_keras_model(payload.model_bytes), payload.output_name)
    return KerasScorer(model, payload.catalogue, payload.movie_ids, payload.batch_pairs)


def _single_threaded_tensorflow() -> None:
    # The worker's first TensorFlow import: quiet at the log level the driver handed it (console).
    tf = console.import_tensorflow()
    # Spark already runs one Python worker per core; TensorFlow's own pools would oversubscribe.
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TensorFlow already ran in this worker: its pools are fixed


# One scorer per Python worker process, kept across tasks, batches and jobs
# (Spark reuses workers); keyed by model path and checksum (and data, path,
# output) so any change rebuilds it, and holding one entry so memory stays bounded.
_SCORERS: dict[tuple, object] = {}


def worker_scorer(key: tuple, payload, loads) -> object:
    """The cached scorer for `key`, built from the broadcast `payload` on first use in this process."""
    if key not in _SCORERS:
        _SCORERS.clear()
        _SCORERS[key] = build_scorer(payload.value)
        loads.add(1)
    return _SCORERS[key]


# --- Spark: who is scored, against what --------------------------------------


def watched_sets(interactions: DataFrame, movies: DataFrame) -> DataFrame:
    """userId, watched, liked: every user with a rating, the distinct catalogue movies they rated (maybe none),
    and those they liked (a history the two-tower model reads).

    One pass over the ratings gives the users=all list and both sets.
    """
    catalogue = F.broadcast(movies.select(C.MOVIE_ID, F.lit(True).alias("_catalogued")))
    rated = interactions.select(C.USER_ID, C.MOVIE_ID, C.LIKE).join(catalogue, C.MOVIE_ID, "left")
    in_catalogue = F.when(F.col("_catalogued"), F.col(C.MOVIE_ID))  # null otherwise, which collect_set skips
    liked = F.when(F.col(C.LIKE) == 1, in_catalogue)
    return rated.groupBy(C.USER_ID).agg(F.collect_set(in_catalogue).alias(WATCHED), F.collect_set(liked).alias(LIKED))


def scoring_input(watched: DataFrame, user_vocab: DataFrame, users: str, limit: int) -> DataFrame:
    """userId, user_idx (0 outside the model's vocabulary), watched and liked (empty when none).

    users="sample": the users of vocab/user; "all": every user with a rating.
    With `limit`, only that many users, the lowest userIds.
    """
    chosen = watched if users == "all" else user_vocab.select(C.USER_ID).join(watched, C.USER_ID, "left")
    if limit:
        chosen = chosen.orderBy(C.USER_ID).limit(limit)
    indexed = vocab.lookup(chosen, user_vocab, C.USER_ID, C.USER_IDX)
    empty = F.array().cast(T.ArrayType(T.IntegerType()))
    lists = [F.coalesce(F.col(name), empty).alias(name) for name in (WATCHED, LIKED)]
    return indexed.select(C.USER_ID, C.USER_IDX, *lists)


def known_users(frame: DataFrame) -> DataFrame:
    """The users the model has an embedding for (unknown_users=skip)."""
    return frame.filter(F.col(C.USER_IDX) != C.UNKNOWN_INDEX)


def input_counts(frame: DataFrame, catalogue_size: int, k: int) -> dict[str, int]:
    """Users, unknown users, users without a rated catalogue movie, candidate pairs and expected rows of an input.

    A two-tower model places a user without history at its empty-history vector: one list for all of them.
    """
    unwatched = F.lit(catalogue_size) - F.size(WATCHED)
    row = frame.agg(
        F.count(F.lit(1)).alias("users"),
        F.sum((F.col(C.USER_IDX) == C.UNKNOWN_INDEX).cast("long")).alias("unknown"),
        F.sum((F.size(WATCHED) == 0).cast("long")).alias("no_history"),
        F.sum(unwatched.cast("long")).alias("pairs"),
        F.sum(F.least(unwatched, F.lit(k)).cast("long")).alias("rows"),
        F.sum((unwatched < k).cast("long")).alias("short"),
    ).first()
    return {name: int(row[name] or 0) for name in ("users", "unknown", "no_history", "pairs", "rows", "short")}


@dataclass
class WorkerCounters:
    """Accumulators the pandas UDF adds to: scorer builds, Arrow batches, Python worker CPU seconds (all of it,
    and the part a two-tower scorer spent computing user vectors)."""

    loads: object
    batches: object
    cpu_seconds: object
    vector_seconds: object

    @classmethod
    def create(cls, spark: SparkSession) -> WorkerCounters:
        context = spark.sparkContext
        return cls(context.accumulator(0), context.accumulator(0), context.accumulator(0.0), context.accumulator(0.0))

    def values(self) -> dict:
        return {
            "scorer_loads": self.loads.value,
            "arrow_batches": self.batches.value,
            "worker_cpu_s": round(self.cpu_seconds.value, 3),
            "worker_user_vector_cpu_s": round(self.vector_seconds.value, 3),
        }


def recommend(frame: DataFrame, payload, key: tuple, k: int, block: int, counters: WorkerCounters) -> DataFrame:
    """SCORED_SCHEMA rows: each input user's top-k, scored in a pandas UDF over Arrow batches of users."""

    def score_batches(users: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        # CPU time, not wall time: on a shared machine it still says what the scoring costs.
        started = time.process_time()
        scorer = worker_scorer(key, payload, counters.loads)
        vectors_before = scorer.vector_seconds
        for batch in users:
            counters.batches.add(1)
            yield recommend_batch(scorer, batch, k, block)
        counters.cpu_seconds.add(time.process_time() - started)
        counters.vector_seconds.add(scorer.vector_seconds - vectors_before)

    return frame.mapInPandas(score_batches, SCORED_SCHEMA)


def with_movie_details(scored: DataFrame, movies: DataFrame) -> DataFrame:
    """The recommendation table: scored rows with each movie's title and genres."""
    details = F.broadcast(movies.select(C.MOVIE_ID, C.TITLE, C.GENRES))
    return scored.join(details, C.MOVIE_ID, "left").select(*RECOMMENDATION_COLUMNS)


def export_frame(recommendations: DataFrame) -> DataFrame:
    """One file, users in order, ranks in order: the CSV/JSON hand-off."""
    return recommendations.repartition(1).sortWithinPartitions(C.USER_ID, RANK)


# --- the job's stages: extract -> plan -> transform -> load --------------------

PREPARED_TABLES = ("manifest.json", "interactions", "movies", "vocab/user")
ARROW_BATCH = "spark.sql.execution.arrow.maxRecordsPerBatch"


@dataclass
class Inputs:
    """The prepared tables (lazy), the catalogue on the driver, and the model file."""

    data_dir: str
    model_dir: str
    interactions: DataFrame
    movies: DataFrame
    user_vocab: DataFrame
    catalogue: pd.DataFrame  # movies/ sorted by movieId
    vocab_sizes: dict[str, int]
    vocabularies_checked: list[str]
    model_bytes: bytes
    model_sha256: str


@dataclass
class Plan:
    """The scoring path chosen for the model, why, the output that ranks, and the payload the workers get."""

    path: str
    reason: str
    kernel: str
    output: str
    payload: Payload


@dataclass
class Scored:
    """The (lazy) recommendation table and what is known about it before it runs."""

    recommendations: DataFrame
    counts: dict[str, int]
    partitions: int
    counters: WorkerCounters
    cached: DataFrame  # the candidate sets, released once written


def extract(spark: SparkSession, data_dir: str, model_dir: str, timer: StageTimer) -> Inputs:
    """Check the prepared tables and the model directory; read the catalogue and the model file."""
    with timer.stage("extract"):
        return _extract(spark, data_dir.rstrip("/"), model_dir.rstrip("/"))


def _extract(spark: SparkSession, data_dir: str, model_dir: str) -> Inputs:
    for table in PREPARED_TABLES:
        if not storage.exists(spark, f"{data_dir}/{table}"):
            raise ScoreError(f"{data_dir}/{table} is missing: not a complete prepare output")
    model_path = f"{model_dir}/{MODEL_FILE}"
    if not storage.exists(spark, model_path):
        raise ScoreError(f"{model_path} is missing: not a training job's model directory")
    vocab_sizes = json.loads(storage.read_text(spark, f"{data_dir}/manifest.json")).get("vocab_sizes")
    if not isinstance(vocab_sizes, dict) or "user" not in vocab_sizes:
        raise ScoreError(f"{data_dir}/manifest.json has no vocab_sizes")
    movies = spark.read.parquet(f"{data_dir}/movies")
    catalogue = movies.orderBy(C.MOVIE_ID).toPandas()
    if catalogue.empty:
        raise ScoreError(f"{data_dir}/movies has no rows: there is no catalogue to rank")
    model_bytes = read_bytes(spark, model_path)
    return Inputs(
        data_dir=data_dir,
        model_dir=model_dir,
        interactions=spark.read.parquet(f"{data_dir}/interactions"),
        movies=movies,
        user_vocab=spark.read.parquet(f"{data_dir}/vocab/user"),
        catalogue=catalogue,
        vocab_sizes=vocab_sizes,
        vocabularies_checked=check_vocabularies(spark, model_dir, data_dir),
        model_bytes=model_bytes,
        model_sha256=hashlib.sha256(model_bytes).hexdigest(),
    )


def read_bytes(spark: SparkSession, path: str) -> bytes:
    """A whole (small) file from any Hadoop filesystem."""
    ((_, data),) = spark.sparkContext.binaryFiles(storage.qualify(path)).collect()
    return bytes(data)


def vocabulary_rows(spark: SparkSession, directory: str, names: list[str]) -> pd.DataFrame:
    """(vocabulary, key, index) of the named vocabularies under directory/vocab, sorted, in one Spark job."""
    parts = []
    for name in names:
        key, index = C.VOCABULARIES[name]
        frame = spark.read.parquet(f"{directory}/vocab/{name}")
        columns = [F.lit(name).alias("vocabulary"), F.col(key).cast("string").alias("key"), F.col(index).alias("index")]
        parts.append(frame.select(*columns))
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    rows = union.toPandas()
    return rows.sort_values(["vocabulary", "index"]).reset_index(drop=True)


def check_vocabularies(spark: SparkSession, model_dir: str, data_dir: str) -> list[str]:
    """Fail when a vocabulary the model was trained with differs from the data's; return those compared.

    Equal sizes are not enough: a model trained on another user sample has
    as many movie indices, pointing at other movies.
    """
    names = [name for name in C.VOCABULARIES if storage.exists(spark, f"{model_dir}/vocab/{name}")]
    if not names:
        return []
    trained, prepared = vocabulary_rows(spark, model_dir, names), vocabulary_rows(spark, data_dir, names)
    for name in names:
        if not trained[trained.vocabulary == name].reset_index(drop=True).equals(
            prepared[prepared.vocabulary == name].reset_index(drop=True)
        ):
            raise ScoreError(
                f"model/vocabulary mismatch: {model_dir}/vocab/{name} differs from {data_dir}/vocab/{name}"
            )
    return names


def plan(inputs: Inputs, config: ScoreConfig, timer: StageTimer) -> Plan:
    """Load the model, check it against the data, and choose the path (fast when it factorizes)."""
    with timer.stage("model"):
        return _plan(inputs, config)


def _plan(inputs: Inputs, config: ScoreConfig) -> Plan:
    model_file = f"{inputs.model_dir}/{MODEL_FILE}"
    # Keras reports a file that is not a zip archive as "File not found"; say what is wrong instead.
    if not inputs.model_bytes.startswith(b"PK"):
        raise ScoreError(f"{model_file} is not a Keras model file (a .keras zip archive)")
    try:
        loaded = load_keras_model(inputs.model_bytes)
    except (ValueError, OSError, TypeError) as exc:
        raise ScoreError(f"cannot load {model_file}: {str(exc).splitlines()[0]}") from None
    model_key = (inputs.model_dir, inputs.model_sha256, inputs.data_dir)
    if retrieval.is_twotower(loaded):
        return _twotower_plan(loaded, inputs, config, model_key)
    output = output_for(loaded, config.output_name)
    model = scored_model(loaded, output)
    check_embeddings(model, inputs.vocab_sizes)
    catalogue = catalogue_inputs(model, inputs.catalogue)
    movie_ids = inputs.catalogue[C.MOVIE_ID].to_numpy(dtype=np.int64)
    reason = "path=generic was asked for"
    if config.path != "generic":
        try:
            factorized = factorize(model, inputs.vocab_sizes["user"], catalogue)
        except NotFactorizable as exc:
            if config.path == "fast":
                raise ScoreError(f"path=fast: the model does not factorize ({exc})") from None
            reason = f"the model does not factorize: {exc}"
        else:
            payload = Payload(model_key + ("fast", output), movie_ids, factorized=factorized)
            kernel = type(kernel_for(factorized)).__name__
            return Plan("fast", "the first Dense reads per-input embeddings only", kernel, output, payload)
    payload = Payload(
        model_key + ("generic", output),
        movie_ids,
        model_bytes=inputs.model_bytes,
        catalogue=catalogue,
        output_name=output,
        batch_pairs=config.generic_batch_pairs,
    )
    return Plan("generic", reason, "keras", output, payload)


def _twotower_plan(model, inputs: Inputs, config: ScoreConfig, model_key: tuple) -> Plan:
    """A two-tower model ranks by its score output, a dot product: the movie side is computed here, once."""
    if config.path == "generic":
        raise ScoreError("path=generic: a two-tower model is scored by its towers (path auto or fast)")
    if config.output_name not in ("auto", retrieval.SCORE_OUTPUT):
        raise ScoreError(f"output_name={config.output_name}: a two-tower model ranks by its "
                         f"{retrieval.SCORE_OUTPUT!r} output (set auto)")
    catalogue = catalogue_inputs(model, inputs.catalogue)
    towers = retrieval.TwoTower.from_model(model, catalogue)
    rows = len(towers.history_embedding)
    if rows != inputs.vocab_sizes["movie"]:
        raise ScoreError(f"model/vocabulary mismatch: history_embedding has {rows} rows, vocab/movie has "
                         f"{inputs.vocab_sizes['movie']} indices")
    movie_ids = inputs.catalogue[C.MOVIE_ID].to_numpy(dtype=np.int64)
    payload = Payload(
        model_key + ("fast", retrieval.SCORE_OUTPUT), movie_ids,
        towers=towers, movie_idx=inputs.catalogue[C.MOVIE_IDX].to_numpy(dtype=np.int64),
    )
    reason = "a two-tower model: user vector . movie vector + movie bias, the user vector from the history"
    return Plan("fast", reason, "dot", retrieval.SCORE_OUTPUT, payload)


def transform(spark: SparkSession, inputs: Inputs, plan: Plan, config: ScoreConfig, timer: StageTimer) -> Scored:
    """Build each user's candidate set (cached and counted), then declare the scoring over it."""
    partitions = config.partitions or 2 * spark.sparkContext.defaultParallelism
    with timer.stage("candidates"):
        watched = watched_sets(inputs.interactions, inputs.movies)
        chosen = scoring_input(watched, inputs.user_vocab, config.users, config.limit_users)
        # Cached already partitioned, so the timed scoring starts from memory without a shuffle.
        cached = chosen.repartition(partitions, C.USER_ID).cache()
        counts = input_counts(cached, len(inputs.catalogue), config.top_k)
        if config.unknown_users == "skip":
            frame = known_users(cached)
            scored_counts = input_counts(frame, len(inputs.catalogue), config.top_k)
        else:
            frame, scored_counts = cached, counts
    if not scored_counts["users"]:
        cached.unpersist()
        raise ScoreError(
            f"no user to score in {inputs.data_dir} (users={config.users}, unknown_users={config.unknown_users}, "
            f"{counts['users']:,} users requested)"
        )
    counts = {
        "users_requested": counts["users"],
        "users_unknown": counts["unknown"],
        "users_without_history": scored_counts["no_history"],
        "users_skipped": counts["users"] - scored_counts["users"],
        "users_scored": scored_counts["users"],
        "users_short": scored_counts["short"],
        "pairs": scored_counts["pairs"],
        "rows_expected": scored_counts["rows"],
    }
    payload = spark.sparkContext.broadcast(plan.payload)
    counters = WorkerCounters.create(spark)
    block = config.tower_block_users if plan.payload.towers is not None else config.block_users
    scored = recommend(frame, payload, plan.payload.key, config.top_k, block, counters)
    return Scored(with_movie_details(scored, inputs.movies), counts, partitions, counters, cached)


@contextmanager
def session_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """Set a runtime SQL setting for the duration of a block, then restore it."""
    previous = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)


def load(spark: SparkSession, scored: Scored, staging: str, config: ScoreConfig, timer: StageTimer) -> dict:
    """Run the scoring into staging/recommendations (and the export); returns the written counts."""
    path = f"{staging}/recommendations"
    jvm_started = jvm_cpu_seconds(spark)
    with session_conf(spark, ARROW_BATCH, str(config.arrow_batch_users)), timer.stage("score"):
        scored.recommendations.write.mode("error").parquet(path)
    jvm_finished = jvm_cpu_seconds(spark)
    jvm_cpu = None if None in (jvm_started, jvm_finished) else round(jvm_finished - jvm_started, 3)
    scored.cached.unpersist()
    timer.count("recommendations", spark.read.parquet(path).count())
    if config.export != "none":
        with timer.stage("export"):
            writer = export_frame(spark.read.parquet(path)).write.mode("error")
            if config.export == "csv":
                writer.option("header", True).csv(f"{staging}/export")
            else:
                writer.json(f"{staging}/export")
    return {**scored.counters.values(), "score_jvm_cpu_s": jvm_cpu}


def jvm_cpu_seconds(spark: SparkSession) -> float | None:
    """CPU seconds used so far by the driver JVM (in local mode it runs the executors too); None if unknown."""
    duration = spark._jvm.java.lang.ProcessHandle.current().info().totalCpuDuration()
    return duration.get().toMillis() / 1000 if duration.isPresent() else None


def manifest(
    spark: SparkSession, config: ScoreConfig, inputs: Inputs, plan: Plan, scored: Scored, output: str,
    timer: StageTimer, loaded: dict,
) -> dict:
    return {
        "job": "score",
        "created_unix": int(time.time()),
        "data": inputs.data_dir,
        "model": {
            "directory": inputs.model_dir,
            "sha256": inputs.model_sha256,
            "bytes": len(inputs.model_bytes),
            "vocabularies_checked": inputs.vocabularies_checked,
        },
        "path": {"chosen": plan.path, "reason": plan.reason, "kernel": plan.kernel, "output": plan.output},
        "output": output,
        "catalogue_movies": len(inputs.catalogue),
        "users": {name[len("users_"):]: n for name, n in scored.counts.items() if name.startswith("users_")},
        "pairs_scored": scored.counts["pairs"],
        "pairs_per_second": _rate(scored.counts["pairs"], timer.seconds["score"]),
        # Per CPU second, what the scoring costs even on a machine shared with other jobs: the
        # Python workers' CPU inside the UDF, and in local mode also the JVM's during the stage.
        "pairs_per_worker_cpu_second": _rate(scored.counts["pairs"], loaded["worker_cpu_s"]),
        "pairs_per_cpu_second": _rate(scored.counts["pairs"], _local_cpu_seconds(spark, loaded)),
        "recommendations": {"rows": timer.rows["recommendations"], "expected": scored.counts["rows_expected"]},
        "partitions": scored.partitions,
        **loaded,
        "config": to_dict(config),
        "versions": {**library_versions(), "spark": spark.version},
        "spark": {
            "master": spark.sparkContext.master,
            "default_parallelism": spark.sparkContext.defaultParallelism,
            ARROW_BATCH: config.arrow_batch_users,
        },
        "timings_s": dict(timer.seconds),
    }


def _rate(count: int, seconds: float | None) -> int | None:
    return round(count / seconds) if seconds else None


def _local_cpu_seconds(spark: SparkSession, loaded: dict) -> float | None:
    """Workers' plus JVM CPU of the score stage, when the JVM is the only executor (local mode)."""
    jvm = loaded["score_jvm_cpu_s"]
    if jvm is None or not spark.sparkContext.master.startswith("local"):
        return None
    return loaded["worker_cpu_s"] + jvm


def write_manifest(spark: SparkSession, document: dict, path: str) -> None:
    storage.write_text(spark, path, json.dumps(document, indent=2, sort_keys=True) + "\n")
