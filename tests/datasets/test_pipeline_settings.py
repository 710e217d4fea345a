"""The training pipeline's settings: cache, order, augmentation and per-element decode errors."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from datasets import cache_policy
from datasets.augment import Augmentation
from datasets.cache_policy import decoded_bytes, should_cache
from datasets.decode_errors import DecodeErrorLog, ReportDecodeErrors
from datasets.pipeline import image_text_dataset
from datasets.validation import validate_examples

SIDE = 8


def png(value: int) -> bytes:
    """A PNG whose pixels are all `value`, so a decoded image says which file it came from."""
    return tf.io.encode_png(np.full((SIDE, SIDE, 3), value, np.uint8)).numpy()


def body_corrupt_png() -> bytes:
    """A PNG whose header and end chunk are intact but whose pixel data is not."""
    pixels = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    data = bytearray(tf.io.encode_png(pixels).numpy())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    return bytes(data)


def image_files(tmp_path, count: int) -> list[str]:
    paths = []
    for index in range(count):
        path = tmp_path / f"{index:02d}.png"
        path.write_bytes(png(index * 10))
        paths.append(str(path))
    return paths


def dataset(paths, *, training=True, **settings):
    texts = [f"text {index}" for index in range(len(paths))]
    return image_text_dataset(
        paths,
        texts,
        image_size=SIDE,
        batch_size=4,
        batch_transform=lambda batch: (batch["image"], batch["text"]),
        training=training,
        seed=5,
        **settings,
    )


def epoch(data) -> tuple[list[str], list[float]]:
    """(texts, the mean pixel of each image) in the order the dataset gives them."""
    texts, means = [], []
    for images, batch_texts in data:
        texts += [text.decode() for text in batch_texts.numpy()]
        means += [float(value) for value in images.numpy().mean(axis=(1, 2, 3))]
    return texts, means


def test_a_cached_pipeline_reads_its_files_once_and_still_shuffles_every_epoch(tmp_path):
    paths = image_files(tmp_path, 12)
    cached = dataset(paths, cache="memory")
    first_texts, first_means = epoch(cached)
    for path in paths:  # a second read of any file would now see black images
        with open(path, "wb") as file:
            file.write(png(0))
    second_texts, second_means = epoch(cached)
    assert sorted(first_texts) == sorted(second_texts) and first_texts != second_texts
    by_text = dict(zip(first_texts, first_means, strict=True))
    assert [by_text[text] for text in second_texts] == second_means  # images kept their texts
    assert max(second_means) > 0.3
    _, uncached_means = epoch(dataset(paths, cache="off"))
    assert max(uncached_means) == 0.0  # without the cache the new bytes are read


def test_auto_caches_what_fits_in_a_quarter_of_the_available_memory(monkeypatch):
    monkeypatch.setattr(cache_policy, "available_memory_bytes", lambda: 4 * 10**9)
    assert decoded_bytes(1000, 64) == 1000 * (64 * 64 * 12 + cache_policy.ROW_OVERHEAD_BYTES)
    assert should_cache("auto", 1000, 64)  # 49 MB
    assert not should_cache("auto", 100_000, 224)  # 60 GB
    assert should_cache("memory", 100_000, 224) and not should_cache("off", 10, 8)
    with pytest.raises(ValueError, match="--cache must be one of"):
        should_cache("disk", 10, 8)


@pytest.mark.parametrize("cache", ["off", "memory"])
def test_deterministic_order_depends_on_the_seed_alone(tmp_path, cache):
    paths = image_files(tmp_path, 12)
    runs = [epoch(dataset(paths, cache=cache, deterministic=True))[0] for _ in range(2)]
    assert runs[0] == runs[1] and sorted(runs[0]) == sorted(f"text {i}" for i in range(12))
    assert runs[0] != [f"text {i}" for i in range(12)]


def test_evaluation_data_stays_in_order_even_when_training_may_reorder(tmp_path):
    paths = image_files(tmp_path, 10)
    texts, means = epoch(dataset(paths, training=False, deterministic=False))
    assert texts == [f"text {i}" for i in range(10)]
    np.testing.assert_allclose(means, [i * 10 / 255 for i in range(10)], atol=1e-6)


def test_augmentation_changes_training_images_and_swaps_sides_in_flipped_texts(tmp_path):
    paths = []
    for index in range(8):  # left half dark, right half bright: a flip shows in the image
        pixels = np.zeros((SIDE, SIDE, 3), np.uint8)
        pixels[:, SIDE // 2 :] = 200
        path = tmp_path / f"{index}.png"
        path.write_bytes(tf.io.encode_png(pixels).numpy())
        paths.append(str(path))
    texts = ["a square on the left"] * 8
    augmentation = Augmentation(
        crop_scale=(1.0, 1.0), brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0
    )
    common = dict(
        image_size=SIDE,
        batch_size=8,
        batch_transform=lambda b: b,
        seed=1,
        augmentation=augmentation,
    )
    augmented = next(iter(image_text_dataset(paths, texts, training=True, **common)))
    flipped = augmented["image"].numpy()[:, 0, 0, 0] > 0.5
    said_right = np.array([text == b"a square on the right" for text in augmented["text"].numpy()])
    assert flipped.any() and not flipped.all()
    np.testing.assert_array_equal(flipped, said_right)
    evaluation = next(iter(image_text_dataset(paths, texts, training=False, **common)))
    assert not (evaluation["image"].numpy()[:, 0, 0, 0] > 0.5).any()
    assert set(evaluation["text"].numpy()) == {b"a square on the left"}


@pytest.mark.parametrize("cache", ["off", "memory"])
def test_an_image_that_fails_to_decode_is_dropped_alone_and_named(tmp_path, cache):
    paths = image_files(tmp_path, 9)
    with open(paths[3], "wb") as file:
        file.write(body_corrupt_png())
    assert not validate_examples([paths[3]], ["x"]).problems  # its header and tail look right
    log = DecodeErrorLog(index_key="row")
    data = dataset(paths, cache=cache, decode_errors=log)
    printed = []
    report = ReportDecodeErrors(log, print_fn=printed.append)
    texts, _ = epoch(data)
    assert sorted(texts) == sorted(f"text {i}" for i in range(9) if i != 3)[:8]
    assert log.reached_end() and log.failures() == {3: paths[3]}
    report.on_epoch_end(0)
    epoch(data)  # from the cache nothing is decoded again, and nothing is reported again
    report.on_epoch_end(1)
    assert len(printed) == (1 if cache == "memory" else 2)
    assert printed[0].endswith(f"1 of 9 training elements could not be read or decoded and were "
                               f"skipped:\n  #3: {paths[3]}")  # fmt: skip


def test_a_file_that_cannot_be_read_is_named_too(tmp_path):
    paths = image_files(tmp_path, 9)
    Path(paths[6]).unlink()  # gone after the validation pass: lost before the decode map
    log = DecodeErrorLog(index_key="row")
    texts, _ = epoch(dataset(paths, decode_errors=log))
    assert len(texts) == 8 and "text 6" not in texts
    assert log.reached_end() and log.failures() == {6: paths[6]}


def test_the_order_setting_reaches_the_pipeline_and_evaluation_is_always_in_order(tmp_path):
    paths = image_files(tmp_path, 8)
    assert dataset(paths, deterministic=True).options().deterministic
    assert not dataset(paths, deterministic=False).options().deterministic
    assert dataset(paths, training=False, deterministic=False).options().deterministic
