"""House-style checks for TransformerTextEncoder: shape, masking, config, save/load, gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from layers import TransformerTextEncoder

TOKENS = np.array([[5, 3, 7, 0, 0, 0], [2, 9, 4, 6, 1, 8]], dtype="int32")
SIZES = {
    "vocabulary_size": 20,
    "sequence_length": 8,
    "embedding_dim": 16,
    "num_layers": 2,
    "num_heads": 2,
    "intermediate_dim": 24,
}


def encoder_model(length=6, **overrides):
    tokens = keras.Input((length,), dtype="int32")
    encoder = TransformerTextEncoder(**{**SIZES, **overrides}, name="text")
    return keras.Model(tokens, encoder(tokens))


def test_output_shapes():
    outputs = encoder_model()(TOKENS)
    assert tuple(outputs["sequence"].shape) == (2, 6, 16)
    assert tuple(outputs["pooled"].shape) == (2, 16)
    assert TransformerTextEncoder(**SIZES).compute_output_shape((None, 6)) == {
        "sequence": (None, 6, 16),
        "pooled": (None, 16),
    }


def test_padding_changes_nothing_for_real_tokens():
    encoder = TransformerTextEncoder(**SIZES)
    short = encoder(np.array([[5, 3, 7]], dtype="int32"))
    padded = encoder(np.array([[5, 3, 7, 0, 0, 0, 0, 0]], dtype="int32"))
    np.testing.assert_allclose(short["pooled"], padded["pooled"], atol=1e-5)
    np.testing.assert_allclose(short["sequence"], padded["sequence"][:, :3], atol=1e-5)
    np.testing.assert_array_equal(padded["sequence"][:, 3:], 0.0)
    different = encoder(np.array([[5, 4, 7]], dtype="int32"))
    assert not np.allclose(short["pooled"], different["pooled"])


def test_pooled_is_the_mean_over_real_tokens():
    outputs = TransformerTextEncoder(**SIZES)(TOKENS)
    expected = outputs["sequence"][0, :3].numpy().mean(axis=0)
    np.testing.assert_allclose(outputs["pooled"][0], expected, atol=1e-5)


@pytest.mark.parametrize("training", [False, True])
def test_all_padding_row_gives_finite_zeros(training):
    encoder = TransformerTextEncoder(**SIZES)
    tokens = np.array([[0, 0, 0, 0], [4, 5, 0, 0]], dtype="int32")
    with tf.GradientTape() as tape:
        outputs = encoder(tokens, training=training)
        loss = tf.reduce_sum(outputs["pooled"])
    np.testing.assert_array_equal(outputs["pooled"][0], 0.0)
    np.testing.assert_array_equal(outputs["sequence"][0], 0.0)
    for gradient in tape.gradient(loss, encoder.trainable_weights):
        assert np.all(np.isfinite(tf.convert_to_tensor(gradient)))


def test_config_round_trip():
    encoder = TransformerTextEncoder(**SIZES, dropout=0.2, name="text")
    rebuilt = TransformerTextEncoder.from_config(encoder.get_config())
    assert rebuilt.get_config() == encoder.get_config()
    assert rebuilt.get_config()["dropout"] == 0.2


def test_keras_save_and_load_round_trip(tmp_path):
    model = encoder_model()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    keras.tree.map_structure(
        lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), model(TOKENS), loaded(TOKENS)
    )


def test_gradients_reach_every_trainable_weight():
    model = encoder_model()
    with tf.GradientTape() as tape:
        outputs = model(TOKENS, training=True)
        loss = sum(tf.reduce_sum(tf.square(x)) for x in keras.tree.flatten(outputs))
    gradients = tape.gradient(loss, model.trainable_weights)
    # Per block: 2 norms x 2, attention q/k/v/output x 2, feed-forward 2 x 2; plus 2
    # embeddings and the output norm.
    assert len(model.trainable_weights) == 2 * (4 + 8 + 4) + 2 + 2
    for weight, gradient in zip(model.trainable_weights, gradients, strict=True):
        assert gradient is not None, f"no gradient for {weight.path}"
        gradient = tf.convert_to_tensor(gradient)
        assert float(tf.reduce_max(tf.abs(gradient))) > 0, f"zero gradient for {weight.path}"


def test_token_embedding_accepts_word_vectors():
    encoder = TransformerTextEncoder(**SIZES)
    encoder.build((None, 6))
    assert isinstance(encoder.token_embedding, keras.layers.Embedding)
    vectors = np.random.default_rng(0).normal(size=(20, 16)).astype("float32")
    encoder.token_embedding.embeddings.assign(vectors)
    np.testing.assert_array_equal(encoder.token_embedding.embeddings.numpy(), vectors)


def test_mixed_bfloat16_policy_runs():
    encoder = TransformerTextEncoder(**SIZES, dtype="mixed_bfloat16")
    tokens = np.array([[5, 3, 7, 0], [0, 0, 0, 0]], dtype="int32")
    with tf.GradientTape() as tape:
        outputs = encoder(tokens, training=True)
        loss = tf.reduce_sum(tf.cast(outputs["pooled"], "float32") ** 2)
    assert outputs["sequence"].dtype == "bfloat16"
    assert outputs["pooled"].dtype == "bfloat16"
    assert all(weight.dtype == "float32" for weight in encoder.weights)
    assert np.all(np.isfinite(tf.cast(outputs["sequence"], "float32")))
    np.testing.assert_array_equal(tf.cast(outputs["pooled"][1], "float32"), 0.0)
    for gradient in tape.gradient(loss, encoder.trainable_weights):
        assert np.all(np.isfinite(tf.convert_to_tensor(gradient)))


def test_rejects_texts_longer_than_sequence_length():
    encoder = TransformerTextEncoder(**SIZES)
    with pytest.raises(ValueError, match="T=9.*sequence_length=8"):
        encoder(np.ones((1, 9), dtype="int32"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_heads": 3}, "embedding_dim=16 and num_heads=3"),
        ({"num_layers": 0}, "num_layers=0"),
        ({"dropout": 1.0}, "dropout=1.0"),
    ],
)
def test_rejects_bad_arguments(overrides, message):
    with pytest.raises(ValueError, match=message):
        TransformerTextEncoder(**{**SIZES, **overrides})
