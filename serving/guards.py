"""Checks at the top of every serving signature.

A loaded signature does not enforce the rank of its TensorSpec, and two inputs
of different batch sizes would be broadcast silently (shared/UPSTREAM.md,
"Serving signatures"), so every signature checks both itself.
"""

from collections.abc import Callable

import tensorflow as tf

from datasets.images import preprocess_image_batch


def batch_of_strings(values: tf.Tensor, name: str) -> tf.Tensor:
    """Ensures `values` is string[None] at run time (EnsureShape), naming the input in the op."""
    return tf.ensure_shape(values, [None], name=f"{name}_must_be_a_batch")


def same_batch_size(first: tf.Tensor, second: tf.Tensor, names: str) -> None:
    tf.debugging.assert_equal(
        tf.shape(first)[0], tf.shape(second)[0], message=f"{names} must have the same batch size"
    )


def images_from_bytes(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """string[B] of encoded images -> float32 [B, S, S, 3], after the rank check."""
    return preprocess_image_batch(batch_of_strings(image_bytes, "image_bytes"), image_size)


def on_nonempty_batch(compute: Callable[..., object], *batches: tf.Tensor):
    """`compute(*batches)`, also when the batches are empty (a valid request).

    oneDNN's CPU convolution in TensorFlow 2.21 returns its input unchanged for a
    batch of zero on some CPUs (seen on AMD EPYC: the next op then fails with
    "Incompatible shapes: [16] vs. [0,64,64,3]"; TF_ENABLE_ONEDNN_OPTS=0 avoids
    it), so an empty request runs `compute` on one placeholder element (zeros, empty
    strings) and every output is cut back to zero rows.

    Args:
        compute: maps the batches to a structure of tensors with the batch first.
        *batches: inputs of one batch size, the first dimension.
    """
    size = tf.shape(batches[0])[0]

    def at_least_one(batch: tf.Tensor) -> tf.Tensor:
        placeholder = tf.zeros(tf.concat([[1], tf.shape(batch)[1:]], axis=0), batch.dtype)
        return tf.cond(size > 0, lambda: batch, lambda: placeholder)

    outputs = compute(*[at_least_one(batch) for batch in batches])
    return tf.nest.map_structure(lambda output: output[:size], outputs)
