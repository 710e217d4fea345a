"""Captioning with an attention decoder: the regulariser in fit's loss, the attention export."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from datasets.text import END_ID, START_ID, WordVocabulary
from models.show_and_tell import build_show_and_tell
from models.show_attend_tell import build_show_attend_tell
from serving.export import export_saved_model
from tasks import captioning
from tasks.options import TaskOptions

OPTIONS = TaskOptions(image_size=32, batch_size=8, sequence_length=6, beam_size=2, seed=0)
SIZES = {"feature_dim": 16, "embedding_dim": 8, "units": 16, "attention_dim": 8}
CAPTIONS = ["red circle", "blue square"]


def tiny_model(attention_regularization=0.05, dropout=0.2):
    vocabulary = WordVocabulary.from_texts(CAPTIONS)
    model = build_show_attend_tell(
        **captioning.model_arguments(vocabulary, OPTIONS),
        attention_regularization=attention_regularization,
        dropout=dropout,
        **SIZES,
    )
    return model, vocabulary


def teacher_forcing_batch(vocabulary):
    """Reddish images captioned "red circle", bluish ones "blue square"."""
    rng = np.random.default_rng(0)
    images = rng.random((8, 32, 32, 3)).astype("float32") * 0.5
    images[:4, ..., 0] += 0.5
    images[4:, ..., 2] += 0.5
    texts = tf.constant([CAPTIONS[0]] * 4 + [CAPTIONS[1]] * 4)
    tokens = vocabulary.encode(texts, OPTIONS.sequence_length, add_start_end=True)
    targets = tokens[:, 1:]
    weights = tf.cast(targets != 0, tf.float32)
    return {"image": images, "tokens": tokens[:, :-1]}, targets, weights


def test_the_attention_penalty_is_part_of_the_loss_fit_minimises():
    """Through the nested caption_decoder and compile_model: fit's loss = cross-entropy +
    penalty (measured at learning rate 0, so the step's weights are the checked ones)."""
    keras.utils.set_random_seed(0)
    model, vocabulary = tiny_model(attention_regularization=2.0, dropout=0.0)
    captioning.compile_model(model, 0.0, OPTIONS)
    inputs, targets, weights = teacher_forcing_batch(vocabulary)
    decoder = model.get_layer("caption_decoder")
    # Training mode (batch statistics), as fit runs it; no dropout, so the same outputs.
    features = model.get_layer("image_encoder")(inputs["image"], training=True)
    outputs = decoder({**features, "tokens": inputs["tokens"]}, training=True)
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="mean_with_sample_weight"
    )(targets, outputs["logits"], sample_weight=weights)
    real_steps = inputs["tokens"].numpy() != 0
    coverage = np.sum(outputs["attention"].numpy() * real_steps[:, :, None], axis=1)
    penalty = 2.0 * np.mean(np.sum((1.0 - coverage) ** 2, axis=-1))
    assert penalty > 0.01 * float(cross_entropy)
    history = model.fit(
        tf.data.Dataset.from_tensors((inputs, targets, weights)), epochs=1, verbose=0
    )
    np.testing.assert_allclose(
        history.history["loss"][0], float(cross_entropy) + penalty, rtol=1e-4
    )


@pytest.fixture(scope="module")
def trained_generator():
    keras.utils.set_random_seed(0)
    model, vocabulary = tiny_model()
    captioning.compile_model(model, 1e-2, OPTIONS)
    batch = teacher_forcing_batch(vocabulary)
    model.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=60, verbose=0)
    return captioning.serving_module(model, vocabulary, OPTIONS), model, batch[0]["image"]


def png_bytes(images):
    return tf.stack([tf.io.encode_png(tf.cast(image * 255.0 + 0.5, tf.uint8)) for image in images])


@pytest.mark.slow
def test_export_returns_the_caption_and_the_attention_behind_each_word(trained_generator, tmp_path):
    module, model, images = trained_generator
    assert isinstance(module, captioning.AttentionCaptionGenerator)
    assert set(module.signatures()) == {"serving_default", "caption_with_attention"}
    loaded = tf.saved_model.load(str(export_saved_model(module, tmp_path)))
    image_bytes = png_bytes(images[[0, 7]])
    served = loaded.signatures["caption_with_attention"](image_bytes=image_bytes)
    captions = [text.decode() for text in served["caption"].numpy()]
    assert captions == CAPTIONS
    assert served["caption"].numpy().tolist() == (
        loaded.signatures["serving_default"](image_bytes=image_bytes)["caption"].numpy().tolist()
    )
    attention = served["attention"].numpy()
    regions = model.get_layer("image_encoder").output["image_regions"].shape[1]
    assert attention.dtype == np.float32
    assert attention.shape == (2, OPTIONS.sequence_length - 1, regions)
    np.testing.assert_allclose(attention.sum(-1), [[1, 1, 0, 0, 0]] * 2, atol=1e-5)

    # The rows are the decoder's own attention, teacher-forced on the generated words.
    vocabulary = module.vocabulary
    ids = vocabulary.encode(tf.constant(CAPTIONS), OPTIONS.sequence_length, add_start_end=True)
    assert np.all(ids.numpy()[:, [0, 3]] == [START_ID, END_ID])
    decoded = tf.image.convert_image_dtype(tf.io.decode_png(image_bytes[0]), tf.float32)[None]
    features = model.get_layer("image_encoder")(decoded)
    expected = model.get_layer("caption_decoder")({**features, "tokens": ids[:1, :-1]})
    np.testing.assert_allclose(attention[0, :2], expected["attention"][0, :2], atol=1e-5)


def test_a_model_without_attention_keeps_the_plain_export():
    vocabulary = WordVocabulary.from_texts(CAPTIONS)
    model = build_show_and_tell(
        **captioning.model_arguments(vocabulary, OPTIONS), feature_dim=16, embedding_dim=8, units=16
    )
    module = captioning.serving_module(model, vocabulary, OPTIONS)
    assert type(module) is captioning.CaptionGenerator
    assert set(module.signatures()) == {"serving_default"}
    assert not hasattr(module, "serve_with_attention")
