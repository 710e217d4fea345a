"""tf.data pipelines: read, decode in parallel, cache, augment, batch, then vectorize text."""

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from datasets.augment import Augmentation
from datasets.cache_policy import should_cache
from datasets.decode_errors import DecodeErrorLog
from datasets.image_sources import FILES, ImageSource
from datasets.images import preprocess_image

AUTOTUNE = tf.data.AUTOTUNE


def image_text_dataset(
    image_paths: Sequence[str],
    texts: Sequence[str],
    *,
    image_size: int,
    batch_size: int,
    batch_transform: Callable[[dict], tuple],
    training: bool,
    seed: int | None = None,
    extras: Mapping[str, Sequence] | None = None,
    images: ImageSource = FILES,
    augmentation: Augmentation | None = None,
    cache: str = "off",
    deterministic: bool = True,
    decode_errors: DecodeErrorLog | None = None,
) -> tf.data.Dataset:
    """Pairs of (image, text) -> batches shaped by `batch_transform`.

    Reads and decodes images in parallel, batches, and then vectorizes the text of a
    whole batch at once. Training batches drop the remainder so that in-batch
    negatives always see a full batch. Training rows are shuffled every epoch: as
    row numbers before anything is read, or, when the decoded split is cached, as
    decoded rows drawn from the cache.

    Args:
        image_paths: the key of each example's image in `images` (a file path for files).
        texts: one text per example.
        image_size: side of the square model input.
        batch_size: examples per batch.
        batch_transform: maps {"image": [B,S,S,3], "text": string[B], **extras} to
            what `fit` or `predict` consumes.
        training: shuffle every epoch, augment, and drop the last partial batch.
        seed: shuffle and augmentation seed.
        extras: more per-example values (labels, weights) carried to `batch_transform`.
        images: where the encoded images are read from (datasets.image_sources).
        augmentation: applied to each decoded training example, after the cache (so
            every epoch draws anew); never to evaluation data.
        cache: "auto", "memory" or "off" (datasets.cache_policy): keep the decoded rows
            in memory after the first pass.
        deterministic: False lets parallel stages hand rows on out of order when that is
            faster; evaluation data is always in order.
        decode_errors: when given, an element that cannot be read or decoded is
            dropped alone (never its batch) and recorded there by its image key, for
            ReportDecodeErrors.
    """
    extras = dict(extras or {})
    for name, values in {"texts": texts, **extras}.items():
        if len(values) != len(image_paths):
            raise ValueError(f"{len(image_paths)} image paths but {len(values)} {name}.")
    if training and len(image_paths) < batch_size:
        raise ValueError(
            f"The training split has {len(image_paths)} examples, fewer than one batch of "
            f"{batch_size}: lower --batch-size or add data."
        )
    columns = {
        name: tf.constant(np.asarray(values)) for name, values in {"text": texts, **extras}.items()
    }
    cached = should_cache(cache, len(image_paths), image_size)

    def decode_row(element):
        row = element["row"]
        return {
            **{name: tf.gather(values, row) for name, values in columns.items()},
            "image": preprocess_image(element["image_bytes"], image_size),
        }

    dataset = images.rows(image_paths, training=training and not cached, seed=seed)
    if decode_errors is None:
        dataset = dataset.map(decode_row, num_parallel_calls=AUTOTUNE)
    else:
        dataset = decode_errors.decode(dataset, decode_row, names=image_paths)
    if cached:
        dataset = dataset.cache()
        if training:
            dataset = dataset.shuffle(len(image_paths), seed=seed, reshuffle_each_iteration=True)
    if training and augmentation is not None:
        dataset = augmentation.apply(dataset, seed)
    dataset = dataset.batch(batch_size, drop_remainder=training)
    dataset = dataset.map(batch_transform, num_parallel_calls=AUTOTUNE)
    order = tf.data.Options()
    order.deterministic = deterministic or not training
    return dataset.prefetch(AUTOTUNE).with_options(order)


def image_dataset(
    image_paths: Sequence[str],
    *,
    image_size: int,
    batch_size: int,
    images: ImageSource = FILES,
):
    """Decoded images only, in order, for encoding or caption generation."""
    dataset = images.rows(image_paths, training=False, seed=None)
    dataset = dataset.map(
        lambda element: preprocess_image(element["image_bytes"], image_size),
        num_parallel_calls=AUTOTUNE,
    )
    return dataset.batch(batch_size).prefetch(AUTOTUNE)
