"""Dense and elementwise layers as numpy operations on row vectors.

An operation is a tuple: ("dense", kernel, bias), ("affine", scale, offset)
or (activation name,). Only these are understood; a model with any other
layer after its first Dense goes to the scoring job's generic path
(sparkrec.score.factorize builds them from a Keras model).
"""

from __future__ import annotations

import numpy as np

from sparkrec.core import metrics

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


def non_decreasing(op: tuple) -> bool:
    return op[0] in ACTIVATIONS or (op[0] == "affine" and op[1] >= 0)


def split_monotone_tail(ops: tuple) -> tuple[tuple, tuple]:
    """(to_key, tail) with ops == to_key + tail and tail elementwise and non-decreasing.

    Top-K is chosen on the key and the tail (sigmoid, rating rescale) is then
    applied to a few hundred survivors per user instead of every pair.
    """
    denses = [i for i, op in enumerate(ops) if op[0] == "dense"]
    cut = denses[-1] + 1 if denses else 0
    tail = ops[cut:]
    if all(non_decreasing(op) for op in tail):
        return ops[:cut], tail
    return ops, ()
