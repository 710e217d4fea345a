"""Checks at the top of every serving signature.

A loaded signature does not enforce the rank of its TensorSpec, and two inputs
of different batch sizes would be broadcast silently (shared/UPSTREAM.md,
"Serving signatures"), so every signature checks both itself.
"""

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
