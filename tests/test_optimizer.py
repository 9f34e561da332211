"""The fused Adam makes Keras' Adam's updates, with and without weight averaging.

Keras' Adam squares each occurrence of a sparse gradient's repeated row
(sparkrec.models.optimizer), so the reference is fed the summed rows as a
dense gradient: Adam's own update.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from sparkrec.models.optimizer import FusedAdam, adam


def _trained(optimizer: keras.optimizers.Optimizer, steps: int, sparse: bool) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    table = keras.Variable(rng.normal(size=(6, 3)).astype(np.float32), name="table")
    kernel = keras.Variable(rng.normal(size=(3, 2)).astype(np.float32), name="kernel")
    optimizer.build([table, kernel])
    for _ in range(steps):
        # Rows 1 and 4 twice, row 0 and 5 never: an embedding's sparse gradient with repeated rows.
        rows = tf.IndexedSlices(
            tf.constant(rng.normal(size=(4, 3)), tf.float32), tf.constant([4, 1, 4, 1]), tf.constant([6, 3])
        )
        dense = tf.constant(rng.normal(size=(3, 2)), tf.float32)
        optimizer.apply_gradients([(rows if sparse else tf.convert_to_tensor(rows), table), (dense, kernel)])
    if optimizer.use_ema:
        optimizer.finalize_variable_values([table, kernel])
    return [table.numpy(), kernel.numpy()]


@pytest.mark.parametrize("ema_momentum", [0.0, 0.9])
def test_fused_adam_updates_as_keras_adam_does(ema_momentum):
    fused = adam(0.01, ema_momentum, fused=True)
    assert isinstance(fused, FusedAdam)
    expected = _trained(adam(0.01, ema_momentum), steps=5, sparse=False)
    got = _trained(fused, steps=5, sparse=True)
    for want, have in zip(expected, got):
        np.testing.assert_allclose(have, want, rtol=0, atol=1e-6)
    # Rows the gradients never reached did not move: the updates are not trivially equal.
    start = np.random.default_rng(7).normal(size=(6, 3)).astype(np.float32)
    np.testing.assert_array_equal(got[0][[0, 5]], start[[0, 5]])
    assert np.abs(got[0][[1, 4]] - start[[1, 4]]).min() > 1e-3
