"""SmallCNNEncoder's inference path folds batch norm into the convolutions, exactly."""

import keras
import numpy as np
import pytest

from layers import SmallCNNEncoder

RNG = np.random.default_rng(0)
IMAGES = RNG.random((3, 32, 32, 3)).astype("float32")


def layer_by_layer(encoder, images):
    """The stages as Keras layers in inference mode, without folding."""
    features = images
    for stage in encoder.stages:
        for layer in stage:
            features = layer(features, training=False)
    return np.array(features)


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
    """Counts BatchNormalization calls: the inference path must not make any (the
    comparison below would pass just as well without the folding)."""
    calls = []
    call = keras.layers.BatchNormalization.call

    def counted(self, inputs, training=None, mask=None):  # Keras reads the signature
        calls.append(self.name)
        return call(self, inputs, training=training, mask=mask)

    monkeypatch.setattr(keras.layers.BatchNormalization, "call", counted)
    return calls


@pytest.mark.parametrize("convolutions_per_stage", [1, 2])
def test_folded_inference_matches_the_layers(convolutions_per_stage, batch_norm_calls):
    encoder = trained_like_encoder(convolutions_per_stage=convolutions_per_stage)
    grid = layer_by_layer(encoder, IMAGES)
    batch_norm_calls.clear()
    regions = np.array(encoder(IMAGES, training=False)["regions"])
    assert batch_norm_calls == []
    np.testing.assert_allclose(regions, grid.reshape(regions.shape), rtol=1e-4, atol=1e-5)


def test_training_still_uses_the_batch_statistics(batch_norm_calls):
    encoder = trained_like_encoder()
    inference = np.array(encoder(IMAGES, training=False)["regions"])
    batch_norm_calls.clear()
    training = np.array(encoder(IMAGES, training=True)["regions"])
    assert len(batch_norm_calls) == 3  # one per stage: the layers, moving statistics and all
    assert not np.allclose(inference, training, atol=1e-3)
