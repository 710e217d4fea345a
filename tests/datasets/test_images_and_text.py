"""Image decoding (every format to RGB) and word vectorization."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from datasets.images import preprocess_image, preprocess_image_batch
from datasets.pipeline import image_text_dataset
from datasets.text import END_ID, PAD_ID, START_ID, UNK_ID, WordVocabulary, standardize


def encoded(format_name, mode="RGB", size=(30, 20), color=(200, 30, 10)):
    if mode == "L":
        color = 120
    elif mode == "RGBA":
        color = (*color, 255)
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format=format_name)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "format_name, mode",
    [
        ("JPEG", "RGB"),
        ("PNG", "RGB"),
        ("PNG", "RGBA"),
        ("PNG", "L"),
        ("GIF", "RGB"),
        ("BMP", "RGB"),
        ("WEBP", "RGB"),
        ("JPEG", "L"),
    ],
)
def test_every_format_decodes_to_rgb_of_the_model_size(format_name, mode):
    image = preprocess_image(tf.constant(encoded(format_name, mode)), 16).numpy()
    assert image.shape == (16, 16, 3) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    if mode == "L":
        np.testing.assert_allclose(image[..., 0], image[..., 1], atol=0.02)
    else:
        assert image[..., 0].mean() > 0.6 and image[..., 2].mean() < 0.2


def test_animated_gif_keeps_the_first_frame():
    frames = [Image.new("RGB", (8, 8), color) for color in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    image = preprocess_image(tf.constant(buffer.getvalue()), 8).numpy()
    assert image.shape == (8, 8, 3) and image[..., 0].mean() > 0.9


def test_batch_decoding_matches_one_by_one():
    images = [encoded("PNG", color=(10, 200, 30)), encoded("JPEG", size=(50, 50))]
    batch = preprocess_image_batch(tf.constant(images), 12).numpy()
    for index, image in enumerate(images):
        np.testing.assert_allclose(batch[index], preprocess_image(tf.constant(image), 12))


def test_standardize_lowercases_strips_punctuation_and_survives_bad_utf8():
    out = standardize(tf.constant(["A Red-Circle,  at the TOP!", b"bad \xff byte"])).numpy()
    assert out[0] == b"a red circle at the top"
    assert out[1].decode("utf-8").startswith("bad")


def test_vocabulary_is_ranked_by_frequency_and_encodes_with_start_end():
    vocabulary = WordVocabulary.from_texts(["a red circle", "a blue circle", "a red square"])
    assert vocabulary.words[:3] == ["a", "circle", "red"]
    ids = vocabulary.encode(tf.constant(["A red triangle"]), 6, add_start_end=True).numpy()
    a, red = 4 + vocabulary.words.index("a"), 4 + vocabulary.words.index("red")
    assert ids.tolist() == [[START_ID, a, red, UNK_ID, END_ID, PAD_ID]]


def test_vocabulary_truncates_long_texts_but_keeps_the_end_token():
    vocabulary = WordVocabulary.from_texts(["one two three four five"])
    ids = vocabulary.encode(tf.constant(["one two three four five"]), 4, add_start_end=True)
    assert ids.numpy()[0].tolist()[0] == START_ID and ids.numpy()[0, -1] == END_ID
    plain = vocabulary.encode(tf.constant(["one two three four five", ""]), 3).numpy()
    assert plain.shape == (2, 3) and plain[1].tolist() == [PAD_ID] * 3


def test_decode_stops_at_end_and_drops_reserved_tokens():
    vocabulary = WordVocabulary.from_texts(["a red circle"])
    ids = vocabulary.encode(tf.constant(["a red circle"]), 8, add_start_end=True).numpy()
    ids[0, -1] = 4  # a word after <end> and padding must not appear
    assert vocabulary.decode_numpy(ids) == ["a red circle"]


def test_vocabulary_save_load_round_trip(tmp_path):
    vocabulary = WordVocabulary.from_texts(["x y z", "x y", "x"], max_size=6)
    assert vocabulary.words == ["x", "y"]
    loaded = WordVocabulary.load(vocabulary.save(tmp_path / "vocab.txt"))
    assert loaded.words == vocabulary.words and loaded.size == 6


def test_empty_training_text_is_an_error():
    with pytest.raises(ValueError, match="no words"):
        WordVocabulary.from_texts(["", "!!"])


def test_pipeline_batches_pairs_and_drops_only_the_last_partial_training_batch(tmp_path):
    paths = []
    for index in range(5):
        path = tmp_path / f"{index}.png"
        path.write_bytes(encoded("PNG", color=(index * 50, 0, 0)))
        paths.append(str(path))
    texts = [f"text {index}" for index in range(5)]
    common = dict(image_size=8, batch_size=2, batch_transform=lambda batch: batch, seed=1)
    evaluation = list(image_text_dataset(paths, texts, training=False, **common))
    assert [len(batch["text"]) for batch in evaluation] == [2, 2, 1]
    assert [t.decode() for batch in evaluation for t in batch["text"].numpy()] == texts
    training = list(image_text_dataset(paths, texts, training=True, **common))
    assert [len(batch["text"]) for batch in training] == [2, 2]
    for batch in training:  # images stay paired with their own text
        for image, text in zip(batch["image"].numpy(), batch["text"].numpy(), strict=True):
            index = int(text.decode().split()[1])
            assert abs(image[..., 0].mean() - index * 50 / 255) < 0.02


def test_training_split_smaller_than_a_batch_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than one batch of 4"):
        image_text_dataset(
            ["/a.png"], ["x"], image_size=8, batch_size=4, batch_transform=dict, training=True
        )
