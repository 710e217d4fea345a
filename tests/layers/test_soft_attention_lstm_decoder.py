"""SoftAttentionLSTMDecoder: shapes, masking, causality, the penalty, config, save/load."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from layers import SoftAttentionLSTMDecoder

RNG = np.random.default_rng(0)
REGIONS = RNG.normal(size=(2, 9, 12)).astype("float32")
EMBEDDINGS = RNG.normal(size=(2, 5, 8)).astype("float32")
MASK = np.array([[True, True, True, False, False], [True] * 5])


def decoder(**kwargs):
    return SoftAttentionLSTMDecoder(units=7, embedding_dim=8, attention_dim=6, **kwargs)


def decoder_model(**kwargs):
    regions, embeddings = keras.Input((9, 12)), keras.Input((5, 8))
    mask = keras.Input((5,), dtype="bool")
    outputs = decoder(**kwargs)(regions, embeddings, mask=mask)
    return keras.Model([regions, embeddings, mask], outputs)


def expected_penalty(attention, mask, weight):
    coverage = np.sum(attention * mask[:, :, None], axis=1)
    return weight * np.mean(np.sum((1.0 - coverage) ** 2, axis=-1))


def test_output_shapes_and_attention_rows_sum_to_one():
    outputs = decoder()(REGIONS, EMBEDDINGS, mask=MASK)
    assert outputs["deep_output"].shape == (2, 5, 8)
    assert outputs["attention"].shape == (2, 5, 9)
    assert outputs["attention"].dtype == "float32"
    np.testing.assert_allclose(np.sum(outputs["attention"], axis=-1), 1.0, atol=1e-5)


def test_padding_and_later_tokens_do_not_change_earlier_outputs():
    layer = decoder()
    base = layer(REGIONS, EMBEDDINGS, mask=MASK)
    changed = EMBEDDINGS.copy()
    changed[:, 3:] += 5.0  # padding of the first row, real steps 3-4 of the second
    outputs = layer(REGIONS, changed, mask=MASK)
    for key in ("deep_output", "attention"):
        np.testing.assert_allclose(base[key][:, :3], outputs[key][:, :3], atol=1e-6)
    assert not np.allclose(base["deep_output"][1, 3], outputs["deep_output"][1, 3])
    # Attention at a step uses the state before it: a token first shows in the next step.
    later = EMBEDDINGS.copy()
    later[:, 1] += 5.0
    outputs = layer(REGIONS, later, mask=MASK)
    np.testing.assert_allclose(base["attention"][:, :2], outputs["attention"][:, :2], atol=1e-6)
    assert not np.allclose(base["attention"][:, 2], outputs["attention"][:, 2])


def test_padding_steps_keep_the_state():
    layer = decoder()
    one_step = np.array([[True, False, False, False, False]] * 2)
    attention = layer(REGIONS, EMBEDDINGS, mask=one_step)["attention"].numpy()
    # After the only real step, the query (the hidden state) no longer changes.
    np.testing.assert_allclose(attention[:, 2], attention[:, 4], atol=1e-6)


def test_the_image_reaches_every_step():
    layer = decoder()
    base = layer(REGIONS, EMBEDDINGS)["deep_output"].numpy()
    moved = layer(REGIONS[:, ::-1] + 1.0, EMBEDDINGS)["deep_output"].numpy()
    assert not np.any(np.all(np.isclose(base, moved, atol=1e-6), axis=-1))


def test_penalty_counts_real_steps_only():
    layer = decoder(attention_regularization=0.5)
    attention = layer(REGIONS, EMBEDDINGS, mask=MASK)["attention"].numpy()
    (penalty,) = layer.losses
    np.testing.assert_allclose(penalty, expected_penalty(attention, MASK, 0.5), rtol=1e-5)
    assert not np.isclose(penalty, expected_penalty(attention, np.ones_like(MASK), 0.5))
    layer(REGIONS, EMBEDDINGS)
    assert len(layer.losses) == 1  # a new call replaces the penalty of the last one


def test_penalty_reaches_the_loss_that_fit_minimises():
    """fit()'s loss is cross-entropy plus the penalty, and its gradient moves the weights."""
    targets = RNG.integers(0, 8, size=(2, 5))
    inputs, weights = [REGIONS, EMBEDDINGS, MASK], MASK.astype("float32")

    def one_step(weight):
        keras.utils.set_random_seed(1)
        regions, embeddings = keras.Input((9, 12)), keras.Input((5, 8))
        mask = keras.Input((5,), dtype="bool")
        outputs = decoder(attention_regularization=weight, name="decoder")(
            regions, embeddings, mask=mask
        )
        logits = keras.layers.Dense(8)(outputs["deep_output"])
        model = keras.Model([regions, embeddings, mask], [logits, outputs["attention"]])
        trained = keras.Model(model.inputs, logits)
        trained.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, reduction="mean_with_sample_weight"
            ),
        )
        logits, attention = model(inputs)
        cross_entropy = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"
        )(targets, logits, sample_weight=weights)
        history = trained.fit(
            inputs, targets, sample_weight=weights, batch_size=2, epochs=1, verbose=0
        )
        loss = history.history["loss"][0]
        expected = float(cross_entropy) + expected_penalty(attention.numpy(), MASK, weight)
        score = trained.get_layer("decoder").score.kernel.numpy()
        return loss, expected, score

    loss, expected, score_without = one_step(0.0)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    loss, expected, score_with = one_step(10.0)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert not np.allclose(score_with, score_without, atol=1e-6)


def test_no_penalty_when_its_weight_is_zero():
    layer = decoder(attention_regularization=0.0)
    layer(REGIONS, EMBEDDINGS)
    assert layer.losses == []


def test_config_round_trip():
    layer = decoder(attention_regularization=0.25, name="attend")
    rebuilt = SoftAttentionLSTMDecoder.from_config(layer.get_config())
    assert rebuilt.get_config() == layer.get_config()


def test_keras_save_and_load_round_trip(tmp_path):
    model = decoder_model()
    data = [REGIONS, EMBEDDINGS, MASK]
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    keras.tree.map_structure(
        lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), model(data), loaded(data)
    )


def test_gradients_reach_every_trainable_weight():
    model = decoder_model()
    with tf.GradientTape() as tape:
        outputs = model([REGIONS, EMBEDDINGS, MASK], training=True)
        loss = tf.reduce_sum(tf.square(outputs["deep_output"])) + tf.add_n(model.losses)
    gradients = tape.gradient(loss, model.trainable_weights)
    assert model.trainable_weights
    for weight, gradient in zip(model.trainable_weights, gradients, strict=True):
        assert gradient is not None, f"no gradient for {weight.path}"
        assert float(tf.reduce_max(tf.abs(gradient))) > 0, f"zero gradient for {weight.path}"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"units": 0}, "units=0"),
        ({"attention_dim": 2.5}, "attention_dim=2.5"),
        ({"attention_regularization": -1.0}, "attention_regularization=-1.0"),
    ],
)
def test_rejects_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        SoftAttentionLSTMDecoder(**{"units": 4, "embedding_dim": 8, **arguments})


def test_rejects_mismatched_embeddings_and_unknown_length():
    with pytest.raises(ValueError, match="embedding_dim=4"):
        SoftAttentionLSTMDecoder(units=7, embedding_dim=4)(REGIONS, EMBEDDINGS)
    with pytest.raises(ValueError, match="T is None"):
        decoder()(keras.Input((9, 12)), keras.Input((None, 8)))
