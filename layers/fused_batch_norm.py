"""A Keras batch norm layer's training step as TensorFlow's one fused kernel."""

import keras
from keras import layers, ops

FUSED_DTYPES = ("float16", "bfloat16", "float32")
FUSED_MINIMUM_EPSILON = 1.001e-5  # FusedBatchNormV3 refuses smaller ones (cuDNN's limit)


def fuses(normalization: layers.Layer, inputs) -> bool:
    """Whether `train_fused` covers this layer and input: TensorFlow, a trainable
    `BatchNormalization` (not a subclass, which may compute otherwise),
    4-D channels-last input of a float dtype, no renorm or synchronized statistics, and
    an epsilon the kernel accepts."""
    return (
        keras.config.backend() == "tensorflow"
        and type(normalization) is layers.BatchNormalization
        and normalization.trainable
        and len(inputs.shape) == 4
        and normalization.axis in (3, -1)
        and not normalization.renorm
        and not normalization.synchronized
        and normalization.epsilon >= FUSED_MINIMUM_EPSILON
        and keras.backend.standardize_dtype(inputs.dtype) in FUSED_DTYPES
    )


def train_fused(normalization: layers.BatchNormalization, inputs):
    """`normalization(inputs, training=True)`, computed by one `FusedBatchNormV3`
    (oneDNN's batch norm on CPU, cuDNN's on a GPU) and its one gradient kernel.

    Keras computes a training batch norm from separate ops (mean, squared difference,
    mean again, scale and shift), each a pass over the feature map, and autodiff
    differentiates each of them: in the image encoder about a quarter of a training
    step's CPU time. The results are the layer's own: the batch's biased variance
    normalizes and updates the moving variance (the kernel returns the unbiased one,
    which is corrected), with its momentum, epsilon and weights. Only for layers where
    `fuses(normalization, inputs)`; the layer itself is left as it is, so saved weights
    and configurations do not change.
    """
    import tensorflow as tf

    channels = inputs.shape[-1]
    gamma = normalization.gamma if normalization.scale else ops.ones((channels,))
    beta = normalization.beta if normalization.center else ops.zeros((channels,))
    outputs, mean, unbiased_variance = tf.compat.v1.nn.fused_batch_norm(
        inputs,
        ops.cast(gamma, "float32"),
        ops.cast(beta, "float32"),
        epsilon=normalization.epsilon,
        data_format="NHWC",
        is_training=True,
    )
    shape = tf.shape(inputs)
    count = ops.cast(shape[0] * shape[1] * shape[2], "float32")
    variance = unbiased_variance * ops.maximum(count - 1.0, 0.0) / count
    momentum = normalization.momentum
    normalization.moving_mean.assign(normalization.moving_mean * momentum + mean * (1.0 - momentum))
    normalization.moving_variance.assign(
        normalization.moving_variance * momentum + variance * (1.0 - momentum)
    )
    return ops.cast(outputs, normalization.compute_dtype)
