"""Training augmentation: crop, colour jitter and the caption-aware horizontal flip."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import datasets.images
from datasets import augment
from datasets.augment import (
    Augmentation,
    augment_example,
    default_flip,
    example_seeds,
    from_flag,
    mentions_side,
    swap_sides,
)

SIZE = 16
# Neither crop nor colour: the only change left is the flip, so it can be checked exactly.
FLIP_ONLY = {"crop_scale": (1.0, 1.0), "brightness": 0, "contrast": 0, "saturation": 0, "hue": 0}
SIDED = "the cat left of the dog, the leftmost bird"
SIDED_SWAPPED = "the cat right of the dog, the rightmost bird"


def half_black_half_white():
    """Grey, so colour jitter cannot reverse it; dark left, bright right, so a flip shows."""
    image = np.zeros([SIZE, SIZE, 3], np.float32)
    image[:, SIZE // 2 :] = 1.0
    return tf.constant(image)


def textured(seed=0):
    return tf.constant(np.random.default_rng(seed).random([SIZE, SIZE, 3]), tf.float32)


def looks_flipped(image):
    """The dark half is on the right: only a flip does that to `half_black_half_white`."""
    image = np.asarray(image)
    return image[:, : SIZE // 2].mean() > image[:, SIZE // 2 :].mean()


def seeds(count):
    return [tf.constant([3, index], tf.int64) for index in range(count)]


def test_output_keeps_shape_dtype_and_range():
    for seed in seeds(8):
        image, text = augment_example(textured(), tf.constant(SIDED), seed)
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == tf.float32
        assert 0.0 <= float(tf.reduce_min(image)) and float(tf.reduce_max(image)) <= 1.0
        assert text.shape == () and text.dtype == tf.string


def test_extreme_jitter_is_clipped_to_the_unit_range():
    strong = Augmentation(brightness=0.9, contrast=0.9, saturation=0.9, hue=0.5)
    for seed in seeds(8):
        image, _ = strong(textured(), tf.constant("a cat"), seed)
        assert 0.0 <= float(tf.reduce_min(image)) and float(tf.reduce_max(image)) <= 1.0


def test_same_seed_same_result_and_different_seeds_different_crops():
    crop_only = Augmentation(brightness=0, contrast=0, saturation=0, hue=0, flip="off")
    image = textured()
    first, _ = crop_only(image, "a", tf.constant([1, 2]))
    again, _ = crop_only(image, "a", tf.constant([1, 2]))
    np.testing.assert_array_equal(first, again)
    crops = [crop_only(image, "a", seed)[0].numpy() for seed in seeds(6)]
    assert all(not np.allclose(crop, image) for crop in crops), "a crop left the image as it was"
    for index, crop in enumerate(crops):
        for other in crops[index + 1 :]:
            assert not np.allclose(crop, other)


def test_colour_jitter_changes_colours_per_seed():
    colour_only = Augmentation(crop_scale=(1.0, 1.0), flip="off")
    image = textured()
    jittered = [colour_only(image, "a", seed)[0].numpy() for seed in seeds(4)]
    assert all(not np.allclose(result, image, atol=1e-3) for result in jittered)
    assert not np.allclose(jittered[0], jittered[1], atol=1e-3)


@pytest.mark.parametrize(
    "text, swapped",
    [
        ("the cat left of the dog", "the cat right of the dog"),
        ("a red circle in the top right", "a red circle in the top left"),
        ("the leftmost and the rightmost", "the rightmost and the leftmost"),
        ("Left or RIGHT, left-hand", "Right or LEFT, right-hand"),
        ("drifting leftwards", "drifting rightwards"),
        ("the lEfT one", "the right one"),
        ("leftover bright copyright alright", "leftover bright copyright alright"),
        ("no sides here", "no sides here"),
    ],
)
def test_swap_sides_swaps_whole_words_only(text, swapped):
    assert swap_sides(tf.constant(text)).numpy().decode() == swapped


def test_swap_sides_works_on_batches_and_twice_is_identity():
    texts = tf.constant([["left", "Right"], ["up", "leftmost right"]])
    swapped = swap_sides(texts)
    assert swapped.numpy().tolist() == [[b"right", b"Left"], [b"up", b"rightmost left"]]
    np.testing.assert_array_equal(swap_sides(swapped), texts)


def test_mentions_side():
    assert bool(mentions_side(tf.constant(["a cat", "on the LEFT"])))
    assert not bool(mentions_side(tf.constant(["a leftover cat", "bright"])))


def test_caption_aware_flip_swaps_the_text_exactly_when_the_image_flips():
    flips = []
    for seed in seeds(32):
        image, text = augment_example(half_black_half_white(), tf.constant(SIDED), seed)
        flipped = looks_flipped(image)
        assert text.numpy().decode() == (SIDED_SWAPPED if flipped else SIDED)
        flips.append(flipped)
    assert 4 < sum(flips) < 28, f"{sum(flips)} flips in 32 draws"


def test_flip_alone_mirrors_the_image_exactly():
    flip_only = Augmentation(**FLIP_ONLY)
    image = textured()
    outcomes = set()
    for seed in seeds(16):
        result, text = flip_only(image, tf.constant(SIDED), seed)
        flipped = text.numpy().decode() == SIDED_SWAPPED
        expected = image.numpy()[:, ::-1] if flipped else image.numpy()
        np.testing.assert_array_equal(result, expected)
        outcomes.add(flipped)
    assert outcomes == {True, False}


def test_flip_off_never_flips():
    no_flip = Augmentation(flip="off")
    for seed in seeds(32):
        image, text = no_flip(half_black_half_white(), tf.constant(SIDED), seed)
        assert not looks_flipped(image)
        assert text.numpy().decode() == SIDED


def test_always_safe_flips_only_texts_without_sides_and_never_rewrites():
    safe = Augmentation(flip="always_safe")
    flips_without_sides = 0
    for seed in seeds(32):
        image, text = safe(half_black_half_white(), tf.constant(SIDED), seed)
        assert not looks_flipped(image) and text.numpy().decode() == SIDED
        image, text = safe(half_black_half_white(), tf.constant("a bird"), seed)
        flips_without_sides += looks_flipped(image)
        assert text.numpy().decode() == "a bird"
    assert 4 < flips_without_sides < 28


def test_a_stacked_question_and_answer_are_swapped_together():
    question_answer = tf.constant(["where is the red circle?", "top left"])
    flip_only = Augmentation(**FLIP_ONLY)
    for seed in seeds(16):
        image, text = flip_only(half_black_half_white(), question_answer, seed)
        expected = [
            b"where is the red circle?",
            b"top right" if looks_flipped(image) else b"top left",
        ]
        assert text.numpy().tolist() == expected


def collect(dataset):
    return [(image, text.decode()) for image, text in dataset.as_numpy_iterator()]


def test_dataset_map_runs_in_graph_mode_and_a_seed_reproduces_it():
    images = tf.stack([half_black_half_white()] * 12)
    texts = tf.constant([SIDED] * 12)
    augmentation = Augmentation()

    def augmented(seed):
        pairs = tf.data.Dataset.from_tensor_slices((images, texts))
        pairs = tf.data.Dataset.zip((pairs, example_seeds(seed)))
        return pairs.map(lambda pair, example_seed: augmentation(*pair, example_seed))

    dataset = augmented(5)
    assert dataset.element_spec[0].shape == (SIZE, SIZE, 3)
    first_epoch, second_epoch = collect(dataset), collect(dataset)
    rerun = augmented(5)
    for epoch, again in ((first_epoch, collect(rerun)), (second_epoch, collect(rerun))):
        for (image, text), (image_again, text_again) in zip(epoch, again, strict=True):
            np.testing.assert_array_equal(image, image_again)
            assert text == text_again
    assert not all(
        np.array_equal(one, two)
        for (one, _), (two, _) in zip(first_epoch, second_epoch, strict=True)
    ), "every epoch augmented alike"
    for image, text in first_epoch + second_epoch:
        assert text == (SIDED_SWAPPED if looks_flipped(image) else SIDED)


def test_apply_augments_dict_rows_and_keeps_other_keys():
    rows = tf.data.Dataset.from_tensor_slices(
        {
            "image": tf.stack([half_black_half_white()] * 8),
            "text": tf.constant(["on the left"] * 8),
            "label": tf.range(8),
        }
    )
    out = list(Augmentation().apply(rows, seed=1).as_numpy_iterator())
    assert [row["label"] for row in out] == list(range(8))
    for row in out:
        assert row["image"].shape == (SIZE, SIZE, 3)
        flipped = looks_flipped(row["image"])
        assert row["text"].decode() == ("on the right" if flipped else "on the left")
    with pytest.raises(ValueError, match="'image' and 'text'"):
        Augmentation().apply(tf.data.Dataset.from_tensor_slices({"text": ["a"]}), seed=1)


def encoded_png():
    buffer = io.BytesIO()
    Image.fromarray(np.uint8(np.asarray(textured(1)) * 255)).save(buffer, format="PNG")
    return tf.constant(buffer.getvalue())


def test_preprocess_image_is_untouched_by_the_module():
    """The module is imported above: decoding is still the plain, deterministic function."""
    function = datasets.images.preprocess_image
    assert (function.__module__, function.__qualname__) == ("datasets.images", "preprocess_image")
    assert not any(value is function for value in vars(augment).values())
    first = function(encoded_png(), SIZE).numpy()
    np.testing.assert_array_equal(first, function(encoded_png(), SIZE))
    reference = tf.io.decode_png(encoded_png(), channels=3)
    reference = tf.image.resize(reference, (SIZE, SIZE), antialias=True) / 255.0
    np.testing.assert_allclose(first, reference, atol=1e-6)


def test_default_flip_and_flag_values():
    for task in ("captioning", "retrieval", "classification"):
        assert default_flip(task) == "caption_aware"
    assert default_flip("vqa") == "off"  # answers naming a side cannot be swapped
    with pytest.raises(ValueError, match="'segmentation'"):
        default_flip("segmentation")
    assert from_flag("off", "vqa") is None
    assert from_flag("on", "vqa") == Augmentation(flip="off")
    assert from_flag("on", "captioning") == Augmentation(flip="caption_aware")
    assert from_flag("no_flip", "vqa").flip == "off"
    assert from_flag("always_safe", "vqa").flip == "always_safe"
    with pytest.raises(ValueError, match="'sideways'"):
        from_flag("sideways", "vqa")


@pytest.mark.parametrize(
    "settings, field",
    [
        ({"crop_scale": (0.0, 1.0)}, "crop_scale"),
        ({"crop_scale": (0.9, 0.5)}, "crop_scale"),
        ({"crop_ratio": (2.0, 1.0)}, "crop_ratio"),
        ({"contrast": 1.5}, "contrast"),
        ({"hue": 0.7}, "hue"),
        ({"flip": "mirror"}, "mirror"),
    ],
)
def test_bad_settings_name_the_value(settings, field):
    with pytest.raises(ValueError, match=field):
        Augmentation(**settings)
