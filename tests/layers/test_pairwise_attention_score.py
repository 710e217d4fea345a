"""PairwiseAttentionScore: shapes, aligned scores, cosines and scale, saving, grads."""

import inspect
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from layers import PairwiseAttentionScore

RNG = np.random.default_rng(0)
REGIONS = RNG.normal(size=(3, 5, 6)).astype("float32")
TEXTS = RNG.normal(size=(4, 7)).astype("float32")


def scorer(initial_temperature=0.07, **kwargs):
    layer = PairwiseAttentionScore(
        attention_dim=8, embedding_dim=5, initial_temperature=initial_temperature, **kwargs
    )
    layer(REGIONS, TEXTS)
    return layer


def copy_weights(source, target):
    for name in ("attention", "image_projection", "text_projection"):
        getattr(target, name).set_weights(getattr(source, name).get_weights())


def reference_cosines(layer, regions, texts):
    """The same scores, pair by pair, in NumPy."""
    attention = layer.attention
    image_kernel, image_bias = attention.image_attention.get_weights()
    (text_kernel,) = attention.text_attention.get_weights()
    (score_kernel,) = attention.score.get_weights()
    image_projection, image_projection_bias = layer.image_projection.get_weights()
    text_projection, text_projection_bias = layer.text_projection.get_weights()
    scores = np.zeros((len(regions), len(texts)))
    for i, image in enumerate(regions):
        for j, text in enumerate(texts):
            hidden = np.tanh(image @ image_kernel + image_bias + text @ text_kernel)
            logits = (hidden @ score_kernel)[:, 0]
            weights = np.exp(logits - logits.max())
            weights /= weights.sum()
            pooled = weights @ image
            image_vector = pooled @ image_projection + image_projection_bias
            text_vector = text @ text_projection + text_projection_bias
            scores[i, j] = image_vector @ text_vector
            scores[i, j] /= np.linalg.norm(image_vector) * np.linalg.norm(text_vector)
    return scores


def functional_model(initial_temperature=0.07, aligned=False):
    regions, texts = keras.Input((5, 6)), keras.Input((7,))
    layer = PairwiseAttentionScore(8, 5, initial_temperature=initial_temperature, name="scorer")
    return keras.Model([regions, texts], layer(regions, texts, aligned=aligned)), layer


def test_output_shape_for_different_batch_sizes():
    layer = scorer()
    scores = layer(REGIONS, TEXTS)
    assert tuple(scores.shape) == (3, 4)
    assert keras.backend.standardize_dtype(scores.dtype) == "float32"
    assert layer.compute_output_shape((3, 5, 6), (4, 7)) == (3, 4)
    assert layer.compute_output_shape((3, 5, 6), (3, 7), aligned=True) == (3,)


def test_symbolic_output_shape():
    model, _ = functional_model()
    assert tuple(model.output.shape) == (None, None)
    assert tuple(model([REGIONS, TEXTS]).shape) == (3, 4)
    aligned, _ = functional_model(aligned=True)
    assert tuple(aligned.output.shape) == (None,)


@pytest.mark.parametrize("initial_temperature", [0.07, None])
def test_aligned_scores_are_the_diagonal(initial_temperature):
    layer = scorer(initial_temperature)
    texts = TEXTS[:3]
    aligned = layer(REGIONS, texts, aligned=True)
    assert tuple(aligned.shape) == (3,)
    np.testing.assert_allclose(aligned, np.diagonal(layer(REGIONS, texts)), atol=1e-5)


def test_without_temperature_scores_are_cosines():
    layer = scorer(None)
    assert layer.logit_scale is None
    assert not [weight for weight in layer.weights if "logit_scale" in weight.path]
    scores = layer(REGIONS, TEXTS).numpy()
    assert np.all(scores >= -1.0 - 1e-6) and np.all(scores <= 1.0 + 1e-6)
    np.testing.assert_allclose(scores, reference_cosines(layer, REGIONS, TEXTS), atol=1e-5)


def test_with_temperature_scores_are_scaled_cosines():
    scaled, plain = scorer(0.5), scorer(None)
    copy_weights(scaled, plain)
    cosines = plain(REGIONS, TEXTS).numpy()
    np.testing.assert_allclose(float(scaled.logit_scale), math.log(2.0), atol=1e-6)
    np.testing.assert_allclose(scaled(REGIONS, TEXTS), 2.0 * cosines, atol=1e-5)
    scaled.logit_scale.assign(1.5)
    np.testing.assert_allclose(scaled(REGIONS, TEXTS), math.exp(1.5) * cosines, atol=1e-5)


def test_scale_is_clipped_at_max_scale():
    scaled, plain = scorer(0.5, max_scale=3.0), scorer(None)
    copy_weights(scaled, plain)
    scaled.logit_scale.assign(10.0)
    np.testing.assert_allclose(scaled(REGIONS, TEXTS), 3.0 * plain(REGIONS, TEXTS), atol=1e-5)


@pytest.mark.parametrize("aligned", [False, True])
def test_a_pair_score_does_not_depend_on_the_rest_of_the_batch(aligned):
    layer = scorer()
    matrix = layer(REGIONS, TEXTS).numpy()
    single = layer(REGIONS[1:2], TEXTS[2:3], aligned=aligned).numpy()
    np.testing.assert_allclose(single.reshape(()), matrix[1, 2], atol=1e-5)
    other_images = REGIONS[::-1].copy()  # image 1 stays in row 1
    other_images[[0, 2]] += 1.0
    np.testing.assert_allclose(layer(other_images, TEXTS)[1], matrix[1], atol=1e-5)
    other_texts = TEXTS.copy()
    other_texts[[0, 1, 3]] *= -2.0
    np.testing.assert_allclose(layer(REGIONS, other_texts)[:, 2], matrix[:, 2], atol=1e-5)


def test_config_round_trip():
    layer = scorer(None, max_scale=50.0, name="s")
    config = layer.get_config()
    arguments = inspect.signature(PairwiseAttentionScore.__init__).parameters
    for name in set(arguments) - {"self", "kwargs"}:
        assert config[name] == getattr(layer, name), name
    assert config["initial_temperature"] is None
    rebuilt = PairwiseAttentionScore.from_config(config)
    assert rebuilt.get_config() == config


@pytest.mark.parametrize("initial_temperature", [0.07, None])
@pytest.mark.parametrize("aligned", [False, True])
def test_keras_save_and_load_round_trip(initial_temperature, aligned, tmp_path):
    model, layer = functional_model(initial_temperature, aligned)
    texts = TEXTS[:3] if aligned else TEXTS
    if initial_temperature is not None:
        layer.logit_scale.assign(2.0)  # a trained value, not the initial one
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(model([REGIONS, texts]), loaded([REGIONS, texts]), atol=1e-6)
    loaded_layer = loaded.get_layer("scorer")
    assert len(loaded_layer.weights) == len(layer.weights)


@pytest.mark.parametrize("initial_temperature", [0.07, None])
@pytest.mark.parametrize("aligned", [False, True])
def test_gradients_reach_every_trainable_weight(initial_temperature, aligned):
    layer = scorer(initial_temperature)
    texts = TEXTS[:3] if aligned else TEXTS
    with tf.GradientTape() as tape:
        scores = layer(REGIONS, texts, aligned=aligned, training=True)
        readout = np.random.default_rng(1).normal(size=scores.shape)
        loss = tf.reduce_sum(scores * readout)
    gradients = tape.gradient(loss, layer.trainable_weights)
    expected = 9 if initial_temperature is not None else 8
    assert len(layer.trainable_weights) == expected
    for weight, gradient in zip(layer.trainable_weights, gradients, strict=True):
        assert gradient is not None, f"no gradient for {weight.path}"
        assert float(tf.reduce_max(tf.abs(gradient))) > 0, f"zero gradient for {weight.path}"


@pytest.mark.parametrize(
    "initial_temperature",
    [None, 0.07],
)
def test_mixed_bfloat16(initial_temperature, mixed_bfloat16):
    layer = PairwiseAttentionScore(8, 5, initial_temperature=initial_temperature)
    regions, texts = keras.ops.cast(REGIONS, "bfloat16"), keras.ops.cast(TEXTS, "bfloat16")
    scores = layer(regions, texts)
    assert keras.backend.standardize_dtype(scores.dtype) == "float32"
    assert tuple(scores.shape) == (3, 4)
    assert np.all(np.isfinite(scores.numpy()))
    limit = 1.0 if initial_temperature is None else 1.0 / initial_temperature
    assert np.all(np.abs(scores.numpy()) <= limit * 1.01)
    # bfloat16 keeps about 3 significant digits, of the cosine times the scale.
    np.testing.assert_allclose(
        layer(regions, texts[:3], aligned=True),
        np.diagonal(layer(regions, texts[:3])),
        atol=1e-2 * limit,
    )


@pytest.mark.parametrize(
    "arguments, match",
    [
        ({"attention_dim": 0, "embedding_dim": 4}, "attention_dim must be >= 1, got 0"),
        ({"attention_dim": 4, "embedding_dim": 2.5}, "embedding_dim must be >= 1, got 2.5"),
        ({"attention_dim": 4, "embedding_dim": 4, "initial_temperature": 0.0}, "got 0.0"),
        ({"attention_dim": 4, "embedding_dim": 4, "initial_temperature": -1.0}, "got -1.0"),
    ],
)
def test_bad_arguments_raise_value_error(arguments, match):
    with pytest.raises(ValueError, match=match):
        PairwiseAttentionScore(**arguments)


def test_regions_without_a_region_axis_raise():
    with pytest.raises(ValueError, match=r"\(3, 6\)"):
        PairwiseAttentionScore(4, 4)(REGIONS[:, 0], TEXTS)
