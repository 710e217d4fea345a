"""Image decoding shared by the tf.data pipelines and the exported serving signatures.

One function turns encoded bytes into the model's image tensor, so training and
serving cannot drift apart.
"""

import tensorflow as tf


def decode_image(image_bytes: tf.Tensor) -> tf.Tensor:
    """Decodes JPEG, PNG, GIF, BMP or WebP bytes to an RGB uint8 image of rank 3.

    `channels=3` turns grayscale and RGBA into RGB; `expand_animations=False`
    keeps the first frame of a GIF, so the result is always [H, W, 3]
    (see shared/UPSTREAM.md, "Images").
    """
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def preprocess_image(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decodes one encoded image and resizes it to float32 [image_size, image_size, 3] in [0, 1].

    An image whose header gives more than DEFAULT_MAX_PIXELS is refused before it is
    decoded (a decompression bomb), in training and in the exported signatures alike.
    """
    from datasets.image_header import checked_decode  # it builds on decode_image above

    image = checked_decode(image_bytes)
    image = tf.image.resize(image, (image_size, image_size), antialias=True)
    return tf.clip_by_value(image / 255.0, 0.0, 1.0)


def preprocess_image_batch(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decodes a batch of encoded images (string[B]) to float32 [B, image_size, image_size, 3]."""
    return tf.map_fn(
        lambda one: preprocess_image(one, image_size),
        image_bytes,
        fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32),
    )
