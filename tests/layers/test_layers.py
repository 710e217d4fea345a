"""House-style checks for every layer: shape, masking, config round trip, save/load, gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from layers import (
    ContrastiveLogits,
    ImageTextAlignmentLSTM,
    ProjectionHead,
    RecurrentTextEncoder,
    SmallCNNEncoder,
)

RNG = np.random.default_rng(0)
IMAGES = RNG.random((2, 32, 32, 3)).astype("float32")
TOKENS = np.array([[5, 3, 7, 0, 0], [2, 9, 4, 6, 1]], dtype="int32")
VECTORS = RNG.normal(size=(2, 12)).astype("float32")
SEQUENCE = RNG.normal(size=(2, 5, 8)).astype("float32")


def image_encoder_model():
    images = keras.Input((32, 32, 3))
    outputs = SmallCNNEncoder(filters=(8, 16), output_dim=10, pooled_grid=4)(images)
    return keras.Model(images, outputs), IMAGES, {"pooled": (2, 10), "regions": (2, 64, 16)}


def text_encoder_model(cell="lstm", bidirectional=False):
    tokens = keras.Input((5,), dtype="int32")
    outputs = RecurrentTextEncoder(20, 8, 6, cell=cell, bidirectional=bidirectional)(tokens)
    width = 12 if bidirectional else 6
    return keras.Model(tokens, outputs), TOKENS, {"sequence": (2, 5, width), "pooled": (2, width)}


def alignment_model():
    image, embedded = keras.Input((12,)), keras.Input((5, 8))
    mask = keras.Input((5,), dtype="bool")
    outputs = ImageTextAlignmentLSTM(units=7, embedding_dim=8)(image, embedded, mask=mask)
    inputs = [image, embedded, mask]
    return keras.Model(inputs, outputs), [VECTORS, SEQUENCE, TOKENS != 0], (2, 5, 7)


def projection_model():
    features = keras.Input((12,))
    return keras.Model(features, ProjectionHead(6)(features)), VECTORS, (2, 6)


def logits_model():
    images, texts = keras.Input((6,)), keras.Input((6,))
    normalized = [keras.layers.UnitNormalization()(x) for x in (images, texts)]
    data = [VECTORS[:, :6], VECTORS[:, 6:]]
    return keras.Model([images, texts], ContrastiveLogits()(*normalized)), data, (2, 2)


CASES = {
    "small_cnn_encoder": image_encoder_model,
    "recurrent_text_encoder_lstm": text_encoder_model,
    "recurrent_text_encoder_bigru": lambda: text_encoder_model("gru", True),
    "image_text_alignment_lstm": alignment_model,
    "projection_head": projection_model,
    "contrastive_logits": logits_model,
}


def shapes_of(outputs):
    return keras.tree.map_structure(lambda tensor: tuple(tensor.shape), outputs)


@pytest.mark.parametrize("case", sorted(CASES))
def test_output_shape(case):
    model, data, expected = CASES[case]()
    assert shapes_of(model(data)) == expected


@pytest.mark.parametrize("case", sorted(CASES))
def test_keras_save_and_load_round_trip(case, tmp_path):
    model, data, _ = CASES[case]()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    keras.tree.map_structure(
        lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), model(data), loaded(data)
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_round_trip(case):
    model, _, _ = CASES[case]()
    for layer in model.layers:
        if type(layer).__module__.startswith("layers."):
            rebuilt = type(layer).from_config(layer.get_config())
            assert rebuilt.get_config() == layer.get_config()


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradients_reach_every_trainable_weight(case):
    model, data, _ = CASES[case]()
    with tf.GradientTape() as tape:
        outputs = model(data, training=True)
        loss = sum(tf.reduce_sum(tf.square(x)) for x in keras.tree.flatten(outputs))
    gradients = tape.gradient(loss, model.trainable_weights)
    assert model.trainable_weights
    for weight, gradient in zip(model.trainable_weights, gradients, strict=True):
        assert gradient is not None, f"no gradient for {weight.path}"
        assert float(tf.reduce_max(tf.abs(gradient))) > 0, f"zero gradient for {weight.path}"


def test_text_encoder_ignores_padding():
    encoder = RecurrentTextEncoder(20, 8, 6, bidirectional=True)
    short = np.array([[5, 3, 0, 0, 0]], dtype="int32")
    outputs = encoder(short)
    padded_more = encoder(np.array([[5, 3, 0, 0, 0, 0, 0]], dtype="int32"))
    np.testing.assert_allclose(outputs["pooled"], padded_more["pooled"], atol=1e-6)
    different = encoder(np.array([[5, 4, 0, 0, 0]], dtype="int32"))
    assert not np.allclose(outputs["pooled"], different["pooled"])


def test_alignment_lstm_is_causal_and_masked():
    layer = ImageTextAlignmentLSTM(units=7, embedding_dim=8)
    mask = np.array([[True, True, True, False, False]] * 2)
    base = layer(VECTORS, SEQUENCE, mask=mask).numpy()
    changed = SEQUENCE.copy()
    changed[:, 3:] += 5.0  # padding positions: the valid outputs must not move
    np.testing.assert_allclose(base[:, :3], layer(VECTORS, changed, mask=mask)[:, :3], atol=1e-6)
    later = SEQUENCE.copy()
    later[:, 2] += 5.0  # a later token cannot change earlier outputs
    outputs = layer(VECTORS, later, mask=mask).numpy()
    np.testing.assert_allclose(base[:, :2], outputs[:, :2], atol=1e-6)
    assert not np.allclose(base[:, 2], outputs[:, 2])
    other_image = layer(VECTORS + 1.0, SEQUENCE, mask=mask).numpy()
    assert not np.allclose(base[:, 0], other_image[:, 0])


def test_alignment_lstm_rejects_mismatched_embedding_size():
    layer = ImageTextAlignmentLSTM(units=7, embedding_dim=4)
    with pytest.raises(ValueError, match="embedding_dim=4"):
        layer(VECTORS, SEQUENCE)


def test_contrastive_logits_scale_and_clip():
    layer = ContrastiveLogits(initial_temperature=0.5, max_scale=3.0)
    eye = np.eye(2, dtype="float32")
    np.testing.assert_allclose(layer(eye, eye), 2.0 * eye, atol=1e-5)
    layer.logit_scale.assign(10.0)
    np.testing.assert_allclose(layer(eye, eye), 3.0 * eye, atol=1e-5)


def test_projection_head_outputs_unit_vectors():
    outputs = ProjectionHead(6)(VECTORS).numpy()
    np.testing.assert_allclose(np.linalg.norm(outputs, axis=-1), 1.0, atol=1e-5)


def test_text_encoder_rejects_unknown_cell():
    with pytest.raises(ValueError, match="'rnn'"):
        RecurrentTextEncoder(10, cell="rnn")


def test_small_cnn_encoder_refuses_images_smaller_than_its_stages():
    with pytest.raises(ValueError, match="at least 16 pixels"):
        SmallCNNEncoder()(np.zeros((1, 8, 8, 3), "float32"))
    assert SmallCNNEncoder(filters=(4, 8)).compute_output_shape((None, 47, 47, 3))["regions"] == (
        None,
        144,
        8,
    )
