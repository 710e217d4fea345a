"""Fusion layers: shape, config round trip, save/load, gradients, mixed precision, behaviour."""

import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

from layers.attention_fusion import AttentionFusion
from layers.average_fusion import AverageFusion
from layers.concat_fusion import ConcatFusion
from layers.cross_attention_fusion import CrossAttentionFusion
from layers.gated_fusion import GatedFusion
from layers.multiply_sum_fusion import MultiplySumFusion
from layers.sum_fusion import SumFusion
from layers.weighted_fusion import WeightedFusion

RNG = np.random.default_rng(0)
IMAGE = RNG.normal(size=(2, 6)).astype("float32")
TEXT = RNG.normal(size=(2, 4)).astype("float32")
REGIONS = RNG.normal(size=(2, 5, 6)).astype("float32")
TOKENS = RNG.normal(size=(2, 3, 6)).astype("float32")
REGION_MASK = np.array([[True, True, True, False, False], [True] * 5])
TEXT_MASK = np.array([[True, True, False], [True, True, True]])


def vector_model(layer, width):
    image, text = keras.Input((6,)), keras.Input((4,))
    return keras.Model([image, text], layer(image, text)), [IMAGE, TEXT], (2, width)


def attention_model():
    regions, text = keras.Input((5, 6)), keras.Input((4,))
    mask = keras.Input((5,), dtype="bool")
    outputs = AttentionFusion(attention_dim=3, output_dim=7)(regions, text, mask=mask)
    data = [REGIONS, TEXT, REGION_MASK]
    return keras.Model([regions, text, mask], outputs), data, ((2, 7), (2, 5))


def cross_attention_model():
    regions, tokens = keras.Input((5, 6)), keras.Input((3, 6))
    mask = keras.Input((3,), dtype="bool")
    layer = CrossAttentionFusion(num_heads=2, key_dim=3, feed_forward_dim=8)
    outputs = layer(regions, tokens, text_mask=mask)
    data = [REGIONS, TOKENS, TEXT_MASK]
    return keras.Model([regions, tokens, mask], outputs), data, ((2, 5, 6), (2, 3, 6))


CASES = {
    "concat_fusion": lambda: vector_model(ConcatFusion(projection_dim=3, dropout=0.1), 6),
    "sum_fusion": lambda: vector_model(SumFusion(projection_dim=3), 3),
    "average_fusion": lambda: vector_model(AverageFusion(projection_dim=3), 3),
    "weighted_fusion": lambda: vector_model(WeightedFusion(projection_dim=3), 3),
    "multiply_sum_fusion": lambda: vector_model(MultiplySumFusion(output_dim=3, factors=2), 3),
    "gated_fusion": lambda: vector_model(GatedFusion(output_dim=3), 3),
    "attention_fusion": attention_model,
    "cross_attention_fusion": cross_attention_model,
}


def shapes_of(outputs):
    return keras.tree.map_structure(lambda tensor: tuple(tensor.shape), outputs)


def fusion_layer(model):
    return next(layer for layer in model.layers if type(layer).__module__.startswith("layers."))


@pytest.mark.parametrize("case", sorted(CASES))
def test_output_shape(case):
    model, data, expected = CASES[case]()
    assert shapes_of(model(data)) == expected
    layer = fusion_layer(model)
    input_shapes = [tuple(x.shape) for x in data[:2]]
    assert layer.compute_output_shape(*input_shapes) == expected


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_round_trip(case):
    model, _, _ = CASES[case]()
    layer = fusion_layer(model)
    config = layer.get_config()
    arguments = inspect.signature(type(layer).__init__).parameters
    for name in set(arguments) - {"self", "kwargs"}:
        assert config[name] == getattr(layer, name), name
    rebuilt = type(layer).from_config(config)
    assert rebuilt.get_config() == config


@pytest.mark.parametrize("case", sorted(CASES))
def test_keras_save_and_load_round_trip(case, tmp_path):
    model, data, _ = CASES[case]()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    outputs, loaded_outputs = keras.tree.flatten(model(data)), keras.tree.flatten(loaded(data))
    assert len(outputs) == len(loaded_outputs)
    for output, loaded_output in zip(outputs, loaded_outputs, strict=True):
        np.testing.assert_allclose(output, loaded_output, atol=1e-6)


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradients_reach_every_trainable_weight(case):
    model, data, _ = CASES[case]()
    with tf.GradientTape() as tape:
        outputs = keras.tree.flatten(model(data, training=True))
        # A random linear read-out: a sum of squares would be constant for unit vectors.
        readouts = [np.random.default_rng(1).normal(size=x.shape) for x in outputs]
        loss = sum(tf.reduce_sum(x * r) for x, r in zip(outputs, readouts, strict=True))
    gradients = tape.gradient(loss, model.trainable_weights)
    assert model.trainable_weights
    for weight, gradient in zip(model.trainable_weights, gradients, strict=True):
        assert gradient is not None, f"no gradient for {weight.path}"
        assert float(tf.reduce_max(tf.abs(gradient))) > 0, f"zero gradient for {weight.path}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_mixed_bfloat16(case, mixed_bfloat16):
    model, data, expected = CASES[case]()
    outputs = model(data)
    assert shapes_of(outputs) == expected
    for tensor in keras.tree.flatten(outputs):
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(keras.ops.cast(tensor, "float32"))))
    fused = keras.tree.flatten(outputs)[0]
    # The cross-attention block keeps its residual streams, and so its outputs, in float32.
    expected_dtype = "float32" if case == "cross_attention_fusion" else "bfloat16"
    assert keras.backend.standardize_dtype(fused.dtype) == expected_dtype
    layer = fusion_layer(model)
    if case == "attention_fusion":
        weights = outputs[1]
        assert keras.backend.standardize_dtype(weights.dtype) == "float32"
        np.testing.assert_allclose(np.sum(weights, axis=-1), 1.0, atol=1e-6)
    if case == "cross_attention_fusion":
        _, scores = layer.image_attention(
            REGIONS, TOKENS, value_mask=TEXT_MASK, return_attention_scores=True
        )
        assert keras.backend.standardize_dtype(scores.dtype) == "float32"
        np.testing.assert_allclose(np.sum(scores, axis=-1), 1.0, atol=1e-6)
    if case == "weighted_fusion":
        weights = layer.modality_weights()
        assert keras.backend.standardize_dtype(weights.dtype) == "float32"
        np.testing.assert_allclose(np.sum(weights), 1.0, atol=1e-6)


@pytest.mark.parametrize(
    "make_layer, inputs",
    [
        (lambda: ConcatFusion(dropout=0.5), (IMAGE, TEXT)),
        (lambda: MultiplySumFusion(output_dim=4, dropout=0.5), (IMAGE, TEXT)),
        (lambda: CrossAttentionFusion(2, 3, 8, dropout=0.5), (REGIONS, TOKENS)),
    ],
)
def test_dropout_runs_only_in_training(make_layer, inputs):
    layer = make_layer()
    inference = keras.tree.flatten(layer(*inputs))
    for tensor, again in zip(inference, keras.tree.flatten(layer(*inputs)), strict=True):
        np.testing.assert_array_equal(tensor, again)
    training = keras.tree.flatten(layer(*inputs, training=True))
    assert not np.allclose(inference[0], training[0])


def test_concat_fusion_without_projection_concatenates():
    layer = ConcatFusion()
    np.testing.assert_allclose(layer(IMAGE, TEXT), np.concatenate([IMAGE, TEXT], axis=-1))
    assert not layer.trainable_weights
    assert layer.compute_output_shape((None, 6), (None, 4)) == (None, 10)


@pytest.mark.parametrize("fusion, scale", [(SumFusion, 1.0), (AverageFusion, 0.5)])
def test_sum_and_average_fusion_combine_the_projections(fusion, scale):
    layer = fusion(projection_dim=3)
    outputs = layer(IMAGE, TEXT).numpy()
    image, text = layer.image_projection(IMAGE).numpy(), layer.text_projection(TEXT).numpy()
    assert np.all(np.abs(image) < 1.0)  # the default activation is tanh
    np.testing.assert_allclose(outputs, scale * (image + text), atol=1e-6)


def test_weighted_fusion_weights_are_a_learnable_softmax():
    layer = WeightedFusion(projection_dim=3)
    layer(IMAGE, TEXT)
    np.testing.assert_allclose(layer.modality_weights(), [0.5, 0.5])
    layer.modality_logits.assign([1.0, -0.5])
    weights = np.exp([1.0, -0.5]) / np.sum(np.exp([1.0, -0.5]))
    np.testing.assert_allclose(layer.modality_weights(), weights, atol=1e-6)
    image, text = layer.image_projection(IMAGE).numpy(), layer.text_projection(TEXT).numpy()
    expected = weights[0] * image + weights[1] * text
    np.testing.assert_allclose(layer(IMAGE, TEXT), expected, atol=1e-6)

    assert any(weight is layer.modality_logits for weight in layer.trainable_weights)
    optimizer = keras.optimizers.SGD(learning_rate=1.0)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(IMAGE, TEXT) - image))  # the image alone is right
    logits = [layer.modality_logits]
    optimizer.apply(tape.gradient(loss, logits), logits)
    learned = layer.modality_weights().numpy()
    assert learned[0] > weights[0]
    np.testing.assert_allclose(np.sum(learned), 1.0, atol=1e-6)


def test_multiply_sum_fusion_is_normalised_signed_sqrt_of_pooled_products():
    layer = MultiplySumFusion(output_dim=4, factors=3)
    outputs = layer(IMAGE, TEXT).numpy()
    np.testing.assert_allclose(np.linalg.norm(outputs, axis=-1), 1.0, atol=1e-6)
    product = layer.image_projection(IMAGE).numpy() * layer.text_projection(TEXT).numpy()
    pooled = product.reshape(2, 4, 3).sum(axis=-1)
    expected = np.sign(pooled) * np.sqrt(np.abs(pooled))
    expected /= np.linalg.norm(expected, axis=-1, keepdims=True)
    np.testing.assert_allclose(outputs, expected, atol=1e-3)


def test_multiply_sum_fusion_gradient_is_finite_at_zero():
    layer = MultiplySumFusion(output_dim=4, factors=3)
    layer(IMAGE, TEXT)
    layer.image_projection.kernel.assign(np.zeros((6, 12)))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(IMAGE, TEXT))
    gradients = tape.gradient(loss, layer.trainable_weights)
    assert all(np.all(np.isfinite(gradient)) for gradient in gradients)


def test_gated_fusion_gate_selects_a_modality():
    layer = GatedFusion(output_dim=3)
    mixed = layer(IMAGE, TEXT).numpy()
    image, text = layer.image_projection(IMAGE).numpy(), layer.text_projection(TEXT).numpy()
    assert not np.allclose(mixed, image, atol=1e-3)
    assert not np.allclose(mixed, text, atol=1e-3)
    layer.gate.bias.assign(np.full(3, 50.0))
    np.testing.assert_allclose(layer(IMAGE, TEXT), image, atol=1e-5)
    layer.gate.bias.assign(np.full(3, -50.0))
    np.testing.assert_allclose(layer(IMAGE, TEXT), text, atol=1e-5)


def test_attention_fusion_pools_regions_with_weights_that_sum_to_one():
    layer = AttentionFusion(attention_dim=3)
    fused, weights = layer(REGIONS, TEXT)
    np.testing.assert_allclose(np.sum(weights, axis=-1), 1.0, atol=1e-6)
    assert np.all(weights.numpy() > 0)
    attended = np.einsum("bn,bnc->bc", weights.numpy(), REGIONS)
    np.testing.assert_allclose(fused, np.concatenate([attended, TEXT], -1), atol=1e-5)


def test_attention_fusion_ignores_masked_regions():
    layer = AttentionFusion(attention_dim=3, output_dim=7)
    fused, weights = layer(REGIONS, TEXT, mask=REGION_MASK)
    np.testing.assert_allclose(np.sum(weights, axis=-1), 1.0, atol=1e-6)
    assert np.all(weights.numpy()[~REGION_MASK] == 0.0)
    assert np.all(weights.numpy()[REGION_MASK] > 0.0)
    changed = REGIONS.copy()
    changed[~REGION_MASK] += 5.0
    changed_fused, changed_weights = layer(changed, TEXT, mask=REGION_MASK)
    np.testing.assert_array_equal(fused, changed_fused)
    np.testing.assert_array_equal(weights, changed_weights)
    valid_changed = REGIONS.copy()
    valid_changed[0, 0] += 5.0
    assert not np.allclose(fused[0], layer(valid_changed, TEXT, mask=REGION_MASK)[0][0])
    nothing_valid = np.zeros_like(REGION_MASK)
    assert np.all(layer(REGIONS, TEXT, mask=nothing_valid)[1].numpy() == 0.0)


def test_cross_attention_fusion_ignores_padding_tokens():
    # Unscaled branches, so that what attention reads shows in the outputs.
    layer = CrossAttentionFusion(num_heads=2, key_dim=3, feed_forward_dim=8, layer_scale_init=None)
    image, text = layer(REGIONS, TOKENS, text_mask=TEXT_MASK)
    padded = TOKENS.copy()
    padded[~TEXT_MASK] += np.linspace(-5.0, 5.0, 6)  # not a shift LayerNorm undoes
    padded_image, padded_text = layer(REGIONS, padded, text_mask=TEXT_MASK)
    np.testing.assert_allclose(image, padded_image, atol=1e-6)
    np.testing.assert_allclose(text.numpy()[TEXT_MASK], padded_text.numpy()[TEXT_MASK], atol=1e-6)
    unmasked_image, _ = layer(REGIONS, padded)
    assert not np.allclose(image[0], unmasked_image[0], atol=1e-4)
    valid_changed = TOKENS.copy()
    valid_changed[0, 0] += np.linspace(-5.0, 5.0, 6)
    assert not np.allclose(image[0], layer(REGIONS, valid_changed, text_mask=TEXT_MASK)[0][0])


def test_cross_attention_fusion_starts_close_to_the_identity():
    scaled = CrossAttentionFusion(num_heads=2, key_dim=3, feed_forward_dim=8)
    image, text = scaled(REGIONS, TOKENS, text_mask=TEXT_MASK)
    np.testing.assert_allclose(image, REGIONS, atol=0.05)
    np.testing.assert_allclose(text, TOKENS, atol=0.05)
    assert {weight.name for weight in scaled.weights if "layer_scale" in weight.name} == {
        f"{branch}_layer_scale"
        for branch in (
            "image_attention",
            "text_attention",
            "image_feed_forward",
            "text_feed_forward",
        )
    }
    unscaled = CrossAttentionFusion(
        num_heads=2, key_dim=3, feed_forward_dim=8, layer_scale_init=None
    )
    unscaled_image, _ = unscaled(REGIONS, TOKENS, text_mask=TEXT_MASK)
    assert np.max(np.abs(unscaled_image - REGIONS)) > 0.1


def test_cross_attention_fusion_blocks_stack():
    regions, tokens = keras.Input((5, 6)), keras.Input((3, 6))
    first = CrossAttentionFusion(num_heads=2, key_dim=3, feed_forward_dim=8)
    second = CrossAttentionFusion(num_heads=1, key_dim=4, feed_forward_dim=5)
    model = keras.Model([regions, tokens], second(*first(regions, tokens)))
    assert shapes_of(model([REGIONS, TOKENS])) == ((2, 5, 6), (2, 3, 6))


def test_cross_attention_fusion_rejects_different_widths():
    layer = CrossAttentionFusion(num_heads=2, key_dim=3, feed_forward_dim=8)
    with pytest.raises(ValueError, match="got 6 and 4"):
        layer(REGIONS, TOKENS[..., :4])


@pytest.mark.parametrize(
    "make_layer, match",
    [
        (lambda: ConcatFusion(projection_dim=0), "projection_dim=0"),
        (lambda: ConcatFusion(dropout=1.5), "dropout=1.5"),
        (lambda: SumFusion(projection_dim=-2), "projection_dim=-2"),
        (lambda: AverageFusion(projection_dim=3, activation="nope"), "activation='nope'"),
        (lambda: WeightedFusion(projection_dim=3.5), "projection_dim=3.5"),
        (lambda: MultiplySumFusion(output_dim=4, factors=0), "factors=0"),
        (lambda: GatedFusion(output_dim=0), "output_dim=0"),
        (lambda: AttentionFusion(attention_dim=3, output_dim=0), "output_dim=0"),
        (lambda: CrossAttentionFusion(num_heads=0, key_dim=3, feed_forward_dim=8), "num_heads=0"),
        (lambda: CrossAttentionFusion(2, 3, 8, layer_scale_init=0.0), "layer_scale_init=0.0"),
        (lambda: AttentionFusion(attention_dim=3)(IMAGE, TEXT), r"\(2, 6\)"),
        (lambda: MultiplySumFusion(output_dim=4)(REGIONS, TEXT), r"\(2, 5, 6\)"),
    ],
)
def test_bad_arguments_raise_value_error(make_layer, match):
    with pytest.raises(ValueError, match=match):
        make_layer()
