"""Kernels of the fast path: the keys of a block of users against the whole catalogue, in numpy."""

from __future__ import annotations

import numpy as np

from sparkrec.core.ops import apply
from sparkrec.score.factorize import Factorized


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
