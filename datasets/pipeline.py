"""tf.data pipelines: read files, decode in parallel, batch, then vectorize text per batch."""

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

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
) -> tf.data.Dataset:
    """Pairs of (image, text) -> batches shaped by `batch_transform`.

    Shuffles rows (cheap) before decoding, decodes images in parallel, batches,
    and then vectorizes the text of a whole batch at once. Training batches drop
    the remainder so that in-batch negatives always see a full batch.

    Args:
        image_paths: the key of each example's image in `images` (a file path for files).
        texts: one text per example.
        image_size: side of the square model input.
        batch_size: examples per batch.
        batch_transform: maps {"image": [B,S,S,3], "text": string[B], **extras} to
            what `fit` or `predict` consumes.
        training: shuffle every epoch and drop the last partial batch.
        seed: shuffle seed.
        extras: more per-example values (labels, weights) carried to `batch_transform`.
        images: where the encoded images are read from (datasets.image_sources).
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

    def decode_row(element):
        row = element["row"]
        return {
            **{name: tf.gather(values, row) for name, values in columns.items()},
            "image": preprocess_image(element["image_bytes"], image_size),
        }

    dataset = images.rows(image_paths, training=training, seed=seed)
    dataset = dataset.map(decode_row, num_parallel_calls=AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=training)
    dataset = dataset.map(batch_transform, num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)


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
