"""The models' optimizer: Adam, with optional weight averaging, and a fused form of the same update.

Keras' Adam updates each variable with about a dozen tensor operations, each
a pass over the variable; the two-tower model's two 27k x 256 movie tables
(ML-20M) take a dense update every step, and those passes took about 35 ms of its
228 ms step (docs/benchmarks.md). `FusedAdam` makes Adam's update, by Keras' formula,
with TensorFlow's one-pass ApplyAdam kernel. One difference: given a sparse
gradient in which a row occurs more than once (an embedding row looked up
twice in a batch), Keras squares each occurrence and sums the squares into
the second moment, where Adam squares the row's summed gradient, as this one
does. The pair models keep Keras' own: their published figures were trained
with it.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="sparkrec")
class FusedAdam(keras.optimizers.Adam):
    """keras.optimizers.Adam (without amsgrad) whose per-variable update is one ApplyAdam kernel."""

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(self._momentums[index]),
            v=_handle(self._velocities[index]),
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            # A sparse gradient is summed per row first: Adam's moments are of the whole gradient.
            grad=tf.convert_to_tensor(gradient),
        )


def _handle(variable):
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


def adam(learning_rate: float, ema_momentum: float, fused: bool = False) -> keras.optimizers.Adam:
    """Adam; with ema_momentum > 0 it also keeps an exponential moving average of the weights.

    The average (Polyak averaging) is what validation, early stopping and the
    saved model see (training.AveragedWeights); the steps still update the raw
    weights. It smooths out the last steps' noise in the weights.
    """
    kind = FusedAdam if fused else keras.optimizers.Adam
    if ema_momentum:
        return kind(learning_rate, use_ema=True, ema_momentum=ema_momentum)
    return kind(learning_rate)
