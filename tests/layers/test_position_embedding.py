"""PositionEmbedding: shape, one vector per position, length checks, config, save/load, grads."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from layers import PositionEmbedding

RNG = np.random.default_rng(0)
FEATURES = RNG.normal(size=(2, 5, 4)).astype("float32")


def functional_model(sequence_length=6, positions=5):
    features = keras.Input((positions, 4))
    layer = PositionEmbedding(sequence_length, name="positions")
    return keras.Model(features, layer(features)), layer


def test_output_shape():
    model, layer = functional_model()
    assert tuple(model(FEATURES).shape) == (2, 5, 4)
    assert layer.compute_output_shape((None, 5, 4)) == (None, 5, 4)
    assert tuple(layer.embeddings.shape) == (6, 4)


def test_adds_a_different_vector_per_position():
    layer = PositionEmbedding(sequence_length=5)
    same_rows = np.ones((1, 5, 4), "float32")
    outputs = layer(same_rows).numpy()
    assert not np.allclose(outputs[0, 0], outputs[0, 3])
    np.testing.assert_allclose(outputs - same_rows, layer.embeddings.numpy()[None], atol=1e-6)
    # The same vector is added to every example of the batch.
    np.testing.assert_allclose(
        layer(FEATURES) - FEATURES, layer(FEATURES + 1.0) - FEATURES - 1.0, atol=1e-6
    )


def test_fewer_positions_than_sequence_length_use_the_first_embeddings():
    layer = PositionEmbedding(sequence_length=8)
    outputs = layer(FEATURES).numpy()
    expected = np.broadcast_to(layer.embeddings.numpy()[:5], FEATURES.shape)
    np.testing.assert_allclose(outputs - FEATURES, expected, atol=1e-6)
    shorter = layer(FEATURES[:, :2]).numpy()
    np.testing.assert_allclose(shorter, outputs[:, :2], atol=1e-6)


def test_variable_length_input_in_a_functional_model():
    features = keras.Input((None, 4))
    model = keras.Model(features, PositionEmbedding(8)(features))
    assert tuple(model(FEATURES).shape) == (2, 5, 4)
    assert tuple(model(FEATURES[:, :3]).shape) == (2, 3, 4)


def test_more_positions_than_sequence_length_raise():
    with pytest.raises(ValueError, match="sequence_length=4"):
        PositionEmbedding(sequence_length=4)(FEATURES)
    with pytest.raises(ValueError, match="sequence_length=4"):
        PositionEmbedding(sequence_length=4)(keras.Input((5, 4)))
    # Once built (or with an unknown length) the check is the shapes' own, at run time.
    layer = PositionEmbedding(sequence_length=5)
    layer(FEATURES)
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
        layer(np.zeros((2, 6, 4), "float32"))


@pytest.mark.parametrize("sequence_length", [0, -1, 2.5, None])
def test_bad_sequence_length_raises(sequence_length):
    with pytest.raises(ValueError, match="sequence_length"):
        PositionEmbedding(sequence_length)


def test_mask_passes_through():
    tokens = keras.Input((5,), dtype="int32")
    embedded = keras.layers.Embedding(10, 4, mask_zero=True)(tokens)
    positioned = PositionEmbedding(5)(embedded)
    pooled = keras.layers.GlobalAveragePooling1D()(positioned)
    model = keras.Model(tokens, pooled)
    short = np.array([[3, 4, 0, 0, 0]], "int32")
    layer = model.layers[2]
    np.testing.assert_array_equal(
        layer.compute_mask(FEATURES, short != 0), short != 0
    )  # the mask of the input is the mask of the output
    # The mean covers the two real tokens only.
    features = model.layers[1](short).numpy() + layer.embeddings.numpy()
    np.testing.assert_allclose(model(short), features[:, :2].mean(axis=1), atol=1e-6)


def test_config_round_trip():
    layer = PositionEmbedding(sequence_length=7, initializer="zeros", name="p")
    config = layer.get_config()
    assert config["sequence_length"] == 7 and config["initializer"] == "zeros"
    rebuilt = PositionEmbedding.from_config(config)
    assert rebuilt.get_config() == config
    np.testing.assert_array_equal(rebuilt(FEATURES), FEATURES)  # zero embeddings


def test_keras_save_and_load_round_trip(tmp_path):
    model, _ = functional_model()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(model(FEATURES), loaded(FEATURES))


def test_gradient_reaches_the_embeddings():
    model, layer = functional_model()
    readout = RNG.normal(size=(2, 5, 4))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(FEATURES, training=True) * readout)
    (gradient,) = tape.gradient(loss, model.trainable_weights)
    assert model.trainable_weights == [layer.embeddings]
    np.testing.assert_allclose(gradient[:5], readout.sum(axis=0), atol=1e-5)
    np.testing.assert_array_equal(gradient[5:], 0.0)  # position 5 was not used


def test_mixed_bfloat16(mixed_bfloat16):
    layer = PositionEmbedding(sequence_length=6)
    outputs = layer(keras.ops.cast(FEATURES, "bfloat16"))
    assert keras.backend.standardize_dtype(outputs.dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(layer.embeddings.dtype) == "float32"
    assert tuple(outputs.shape) == (2, 5, 4)
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(keras.ops.cast(outputs, "float32"))))
