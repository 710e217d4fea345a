"""Adam whose TensorFlow update is one fused kernel per variable.

Keras' Adam updates each variable with about 15 separate ops (casts, powers, two
moment updates, square root, division, assignments); over the 24 to 32 variables of
the zoo's models that came to 1.0 to 1.6 ms of every training step (show_and_tell:
3.0 ms -> 2.0 ms for the optimizer, vqa: 5.7 -> 4.1 ms). TensorFlow's
`ResourceApplyAdam` kernel does the same update in one pass over the variable and its
two moments, with the same formula: m += (g - m)(1 - b1), v += (g^2 - v)(1 - b2),
var -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps).

The optimizer stays a `keras.optimizers.Adam` (only this instance's `update_step` is
replaced), so a saved `model.keras` loads where this module is not imported, a
checkpoint holds the same slot variables, and clipping, loss scaling, gradient
accumulation and distribution are Keras' own. Other backends, `amsgrad`, and sparse
(IndexedSlices) gradients keep Keras' update: for an embedding row that a batch
holds twice, Keras adds the squares of the two row gradients to v, where the kernel,
given the summed gradient, would add the square of their sum.
"""

import types

import keras


def adam(learning_rate, **settings) -> keras.optimizers.Adam:
    """`keras.optimizers.Adam(learning_rate, **settings)`, fused on TensorFlow."""
    optimizer = keras.optimizers.Adam(learning_rate, **settings)
    if keras.config.backend() == "tensorflow" and not optimizer.amsgrad:
        optimizer.update_step = types.MethodType(_fused_update_step, optimizer)
    return optimizer


def is_fused(optimizer: keras.optimizers.Optimizer) -> bool:
    """Whether the optimizer (or a loss-scale wrapper's inner one) updates by the fused kernel."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    step = getattr(optimizer, "update_step", None)
    return getattr(step, "__func__", None) is _fused_update_step


def _fused_update_step(self, gradient, variable, learning_rate):
    import tensorflow as tf

    if isinstance(gradient, tf.IndexedSlices):
        return keras.optimizers.Adam.update_step(self, gradient, variable, learning_rate)
    dtype = variable.dtype
    index = self._get_variable_index(variable)
    step = tf.cast(self.iterations + 1, dtype)
    beta_1 = tf.cast(self.beta_1, dtype)
    beta_2 = tf.cast(self.beta_2, dtype)
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
        grad=tf.cast(gradient, dtype),
    )


def _handle(variable):
    """The resource of a Keras variable or a tf.Variable; inside a strategy's update of one
    device, a mirrored variable's handle is that device's copy."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle
