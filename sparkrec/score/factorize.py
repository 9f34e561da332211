"""The fast path's model: a Keras pair model read as projection tables plus numpy operations (`Factorized`).

Keras 3 exposes a functional model's graph only through `_keras_history` and
`_inbound_nodes`; the structure checks below use nothing else of its internals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sparkrec.core import columns as C
from sparkrec.core.ops import ACTIVATIONS, non_decreasing, split_monotone_tail


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


_IDENTITY_LAYERS = ("Dropout", "GaussianDropout", "GaussianNoise", "AlphaDropout", "SpatialDropout1D")


class NotFactorizable(Exception):
    """The model's structure does not allow the fast path; the message says why."""


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
        if not all(non_decreasing(op) for op in tail):
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
