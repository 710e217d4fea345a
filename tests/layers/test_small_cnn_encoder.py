"""SmallCNNEncoder's fast paths give its layers' results: inference folds batch norm into
the convolutions, training runs it as TensorFlow's fused kernel."""

import keras
import numpy as np
import pytest

from layers import SmallCNNEncoder, fused_batch_norm

RNG = np.random.default_rng(0)
IMAGES = RNG.random((3, 32, 32, 3)).astype("float32")


def layer_by_layer(encoder, images, training=False):
    """The stages as Keras layers, without folding or fusing."""
    features = images
    for stage in encoder.stages:
        for layer in stage:
            features = layer(features, training=training)
    return features


def trained_like_encoder(**settings):
    encoder = SmallCNNEncoder(filters=(8, 16, 24), output_dim=10, pooled_grid=2, **settings)
    encoder(IMAGES[:1])
    for stage in encoder.stages:
        for layer in stage:
            if isinstance(layer, keras.layers.BatchNormalization):
                channels = layer.gamma.shape[0]
                layer.gamma.assign(RNG.uniform(0.5, 2.0, channels))
                layer.beta.assign(RNG.normal(0.0, 0.5, channels))
                layer.moving_mean.assign(RNG.normal(0.0, 0.5, channels))
                layer.moving_variance.assign(RNG.uniform(0.2, 3.0, channels))
    return encoder


@pytest.fixture
def batch_norm_calls(monkeypatch):
    """Counts batch norm calls, the layers' own ("layer") and the fused kernel's
    ("fused"): the inference path must make none (the comparison below would pass just
    as well without the folding), the training path fused ones."""
    calls = []
    call = keras.layers.BatchNormalization.call
    train_fused = fused_batch_norm.train_fused

    def counted(self, inputs, training=None, mask=None):  # Keras reads the signature
        calls.append("layer")
        return call(self, inputs, training=training, mask=mask)

    def counted_fused(normalization, inputs):
        calls.append("fused")
        return train_fused(normalization, inputs)

    monkeypatch.setattr(keras.layers.BatchNormalization, "call", counted)
    monkeypatch.setattr(fused_batch_norm, "train_fused", counted_fused)
    return calls


@pytest.mark.parametrize("convolutions_per_stage", [1, 2])
def test_folded_inference_matches_the_layers(convolutions_per_stage, batch_norm_calls):
    encoder = trained_like_encoder(convolutions_per_stage=convolutions_per_stage)
    grid = np.array(layer_by_layer(encoder, IMAGES))
    batch_norm_calls.clear()
    regions = np.array(encoder(IMAGES, training=False)["regions"])
    assert batch_norm_calls == []
    np.testing.assert_allclose(regions, grid.reshape(regions.shape), rtol=1e-4, atol=1e-5)


def test_training_still_uses_the_batch_statistics(batch_norm_calls):
    encoder = trained_like_encoder()
    inference = np.array(encoder(IMAGES, training=False)["regions"])
    batch_norm_calls.clear()
    training = np.array(encoder(IMAGES, training=True)["regions"])
    assert batch_norm_calls == ["fused"] * 3  # one per stage
    assert not np.allclose(inference, training, atol=1e-3)


def test_fused_training_matches_the_layers(batch_norm_calls):
    """A training step through the fused batch norms gives the layers' own outputs,
    gradients and moving statistics."""
    import tensorflow as tf

    def step(encoder, run):
        with tf.GradientTape() as tape:
            regions = run(tf.constant(IMAGES))
            weights = tf.range(regions.shape.num_elements(), dtype="float32") / 1e3
            loss = tf.reduce_sum(tf.reshape(regions, [-1]) * weights)
        return np.array(regions), tape.gradient(loss, encoder.trainable_weights)

    ours, reference = trained_like_encoder(), trained_like_encoder()
    for target, source in zip(reference.weights, ours.weights, strict=True):
        target.assign(source)
    regions, gradients = step(ours, lambda images: ours(images, training=True)["regions"])
    assert batch_norm_calls == ["fused"] * 3
    expected, expected_gradients = step(
        reference, lambda images: layer_by_layer(reference, images, training=True)
    )
    np.testing.assert_allclose(regions, expected.reshape(regions.shape), rtol=1e-4, atol=1e-5)
    for gradient, expected_gradient in zip(gradients, expected_gradients, strict=True):
        if expected_gradient is None:  # the pooled projection: only regions are used
            assert gradient is None
            continue
        np.testing.assert_allclose(
            np.array(gradient), np.array(expected_gradient), rtol=1e-3, atol=1e-4
        )
    for weight, expected_weight in zip(
        ours.non_trainable_weights, reference.non_trainable_weights, strict=True
    ):
        np.testing.assert_allclose(
            np.array(weight), np.array(expected_weight), rtol=1e-5, atol=1e-6
        )
