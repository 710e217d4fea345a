"""tf.data pipelines: read files, decode in parallel, batch, then vectorize text per batch."""

from collections.abc import Callable, Mapping, Sequence

import tensorflow as tf

from datasets.images import preprocess_image

AUTOTUNE = tf.data.AUTOTUNE


def load_image(image_path: tf.Tensor, image_size: int) -> tf.Tensor:
    return preprocess_image(tf.io.read_file(image_path), image_size)


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
) -> tf.data.Dataset:
    """Pairs of (image file, text) -> batches shaped by `batch_transform`.

    Shuffles file names (cheap) before decoding, decodes images in parallel,
    batches, and then vectorizes the text of a whole batch at once. Training
    batches drop the remainder so that in-batch negatives always see a full batch.

    Args:
        image_paths: one image file per example.
        texts: one text per example.
        image_size: side of the square model input.
        batch_size: examples per batch.
        batch_transform: maps {"image": [B,S,S,3], "text": string[B], **extras} to
            what `fit` or `predict` consumes.
        training: shuffle every epoch and drop the last partial batch.
        seed: shuffle seed.
        extras: more per-example values (labels, weights) carried to `batch_transform`.
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
    dataset = tf.data.Dataset.from_tensor_slices(
        {"image_path": list(image_paths), "text": list(texts), **extras}
    )
    if training:
        dataset = dataset.shuffle(len(image_paths), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(
        lambda record: {
            **{key: value for key, value in record.items() if key != "image_path"},
            "image": load_image(record["image_path"], image_size),
        },
        num_parallel_calls=AUTOTUNE,
    )
    dataset = dataset.batch(batch_size, drop_remainder=training)
    dataset = dataset.map(batch_transform, num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)


def image_dataset(image_paths: Sequence[str], *, image_size: int, batch_size: int):
    """Decoded images only, in order, for encoding or caption generation."""
    dataset = tf.data.Dataset.from_tensor_slices(list(image_paths))
    dataset = dataset.map(lambda path: load_image(path, image_size), num_parallel_calls=AUTOTUNE)
    return dataset.batch(batch_size).prefetch(AUTOTUNE)
