"""train_fused runs a batch norm layer's training step as TensorFlow's fused kernel and
gives the layer's own results."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from layers.fused_batch_norm import fuses, train_fused

RNG = np.random.default_rng(0)


def twins(shape, **settings):
    """Two BatchNormalization layers with the same random weights and statistics."""
    pair = []
    for _ in range(2):
        layer = keras.layers.BatchNormalization(momentum=0.9, **settings)
        layer.build(shape)
        pair.append(layer)
    for ours, theirs in zip(*(layer.weights for layer in pair), strict=True):
        value = RNG.uniform(0.5, 2.0, ours.shape).astype("float32")
        ours.assign(value)
        theirs.assign(value)
    return pair


def training_step(run, layer, inputs):
    """Outputs, and the gradients of a weighted sum of them for the inputs and weights."""
    inputs = tf.constant(inputs)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = run(inputs)
        weights = tf.range(1.0, 1.0 + outputs.shape[-1])
        loss = tf.reduce_sum(tf.cast(outputs, "float32") * weights)
    gradients = tape.gradient(loss, [inputs] + layer.trainable_weights)
    return np.array(outputs, "float32"), [np.array(gradient) for gradient in gradients]


def op_types(run, inputs):
    graph = tf.function(run).get_concrete_function(tf.TensorSpec(inputs.shape, inputs.dtype)).graph
    return {op.type for op in graph.get_operations()}


@pytest.mark.parametrize("center, scale", [(True, True), (False, True), (True, False)])
def test_a_training_step_matches_the_layer(center, scale):
    # 2x2x2 values a channel: the unbiased variance is 8/7 of the biased one, so a
    # moving variance updated with the wrong one is visibly off.
    inputs = RNG.normal(2.0, 3.0, (2, 2, 2, 5)).astype("float32")
    reference, fused = twins(inputs.shape, center=center, scale=scale)
    assert fuses(fused, inputs)
    expected, expected_gradients = training_step(
        lambda x: reference(x, training=True), reference, inputs
    )
    outputs, gradients = training_step(lambda x: train_fused(fused, x), fused, inputs)
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-5)
    for gradient, expected_gradient in zip(gradients, expected_gradients, strict=True):
        np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-4, atol=1e-4)
    for ours, theirs in zip(
        fused.non_trainable_weights, reference.non_trainable_weights, strict=True
    ):
        np.testing.assert_allclose(np.array(ours), np.array(theirs), rtol=1e-6, atol=1e-6)
    assert "FusedBatchNormV3" in op_types(lambda x: train_fused(fused, x), inputs)


def test_mixed_precision_runs_in_the_compute_dtype():
    inputs = tf.cast(RNG.normal(size=(4, 6, 6, 8)), "bfloat16")
    reference, fused = twins(inputs.shape, dtype="mixed_bfloat16")
    assert fuses(fused, inputs)
    outputs = train_fused(fused, inputs)
    assert outputs.dtype == tf.bfloat16
    expected = reference(inputs, training=True)
    np.testing.assert_allclose(
        np.array(outputs, "float32"), np.array(expected, "float32"), rtol=2e-2, atol=2e-2
    )
    for ours, theirs in zip(
        fused.non_trainable_weights, reference.non_trainable_weights, strict=True
    ):
        np.testing.assert_allclose(np.array(ours), np.array(theirs), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize(
    "shape, settings, trainable",
    [
        ((6, 5), {}, True),  # not an image
        ((2, 3, 3, 4), {"axis": 1}, True),  # channels first
        ((2, 3, 3, 4), {"renorm": True}, True),
        ((2, 3, 3, 4), {"synchronized": True}, True),
        ((2, 3, 3, 4), {"epsilon": 1e-6}, True),
        ((2, 3, 3, 4), {}, False),  # frozen: keeps its statistics
    ],
)
def test_what_the_kernel_does_not_cover_is_refused(shape, settings, trainable):
    (layer, _) = twins(shape, **settings)
    layer.trainable = trainable
    assert not fuses(layer, np.zeros(shape, "float32"))


def test_only_tensorflow_fuses(monkeypatch):
    (layer, _) = twins((2, 3, 3, 4))
    inputs = np.zeros((2, 3, 3, 4), "float32")
    assert fuses(layer, inputs)
    monkeypatch.setattr(keras.config, "backend", lambda: "jax")
    assert not fuses(layer, inputs)
