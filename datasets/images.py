"""Image decoding shared by the tf.data pipelines and the exported serving signatures.

One function turns encoded bytes into the model's image tensor, so training and
serving cannot drift apart. It uses core TensorFlow ops only, so an export loads in a
process (or a stock TF Serving binary) that has no project code.
"""

import tensorflow as tf

_HEAD_BYTES = 66  # up to the end of a BMP's BI_BITFIELDS colour masks
_ALL_BYTES = bytes(range(256))
_WEBP_ALPHA_FLAG = 0x10
_BMP_BGRA_MASKS = (0x00FF0000, 0x0000FF00, 0x000000FF)
_BMP_MESSAGE = (
    "datasets/images.py: image_bytes is a BMP with {} bits per pixel, compression {} and "
    "a {}-byte info header; TensorFlow decodes only uncompressed 8-, 24- and 32-bit BMPs "
    "with an info header of 40 bytes or more (32-bit bit fields in BGRA order only): "
    "convert it to PNG"
)


def decode_image(image_bytes: tf.Tensor) -> tf.Tensor:
    """Decodes JPEG, PNG, GIF, BMP or WebP bytes to an RGB uint8 image of rank 3.

    Grayscale becomes RGB (the gray value in all three channels) and an alpha channel
    is dropped, not composited over a background: a transparent pixel keeps the colour
    the file stores under it. An animation (GIF, WebP) gives its first frame. 16-bit
    PNG is scaled to 8 bits, a palette (PNG, GIF, 8-bit BMP) is looked up.

    `tf.io.decode_image(channels=3)` alone refuses WebP with alpha and every animated
    WebP, and with `channels=0` it overflows its output buffer on an animated WebP
    without alpha; it returns an 8-bit palette BMP's indices as gray values. Both are
    worked around here (shared/UPSTREAM.md, "Images"); JPEG, PNG and GIF go straight
    to `tf.io.decode_image(channels=3)`.

    Args:
        image_bytes: string scalar, one encoded image.

    Returns:
        uint8 [height, width, 3].

    Raises:
        tf.errors.InvalidArgumentError: bytes that are not a supported image (the
            decoder's own message), or a BMP that TensorFlow's BMP decoder cannot read
            (1-, 4- or 16-bit, run-length encoded, an OS/2 header), named as such.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    riff_or_bmp = tf.equal(tf.strings.substr(image_bytes, 0, 4), b"RIFF") | tf.equal(
        tf.strings.substr(image_bytes, 0, 2), b"BM"
    )
    image = tf.cond(
        riff_or_bmp,
        lambda: _decode_webp_or_bmp(image_bytes),
        lambda: tf.io.decode_image(image_bytes, channels=3, expand_animations=False),
    )
    image.set_shape([None, None, 3])
    return image


def _decode_webp_or_bmp(image_bytes: tf.Tensor) -> tf.Tensor:
    """WebP (or other RIFF data) or BMP to RGB: `channels=0`, then alpha dropped or palette applied.

    WebP: TensorFlow 2.21 sizes its output from the header's alpha flag (3 channels when
    it is clear) but libwebp's animation decoder always writes RGBA: `channels=3` is
    refused ("WebP Animation must be 4 channel RGBA"), `channels=4` too ("Number of
    channels requested does not match input") and `channels=0` writes past the end of
    the output tensor (heap corruption, then SIGABRT or SIGSEGV); see DecodeWebP in
    tensorflow/core/kernels/image/decode_image_op.cc. Setting the alpha flag of the
    extended (VP8X) header, which every animation has, makes the two agree; a still
    image with the flag set decodes to RGBA with opaque alpha, so its RGB is unchanged.

    BMP: TensorFlow returns an 8-bit BMP's palette indices as one gray channel, takes
    bits per pixel / 8 as the channel count, and ignores the compression field and the
    colour masks, so what it would misread is refused here by name.
    """
    padded = tf.strings.join(
        [tf.strings.substr(image_bytes, 0, _HEAD_BYTES), b"\x00" * _HEAD_BYTES]
    )
    head = tf.strings.substr(padded, 0, _HEAD_BYTES)
    length = tf.strings.length(image_bytes)
    flags = tf.bitwise.bitwise_or(tf.io.decode_raw(head, tf.uint8)[20], _WEBP_ALPHA_FLAG)
    with_alpha_flag = tf.strings.join(
        [
            tf.strings.substr(image_bytes, 0, 20),
            tf.strings.substr(_ALL_BYTES, tf.cast(flags, tf.int32), 1),
            tf.strings.substr(image_bytes, tf.minimum(21, length), length),
        ]
    )
    is_extended_webp = (
        tf.equal(tf.strings.substr(head, 0, 4), b"RIFF")
        & tf.equal(tf.strings.substr(head, 8, 8), b"WEBPVP8X")
        & (length > 20)
    )
    is_bmp = tf.equal(tf.strings.substr(head, 0, 2), b"BM")
    with tf.control_dependencies([_check_bmp(head, is_bmp)]):
        image = tf.io.decode_image(
            tf.where(is_extended_webp, with_alpha_flag, image_bytes),
            channels=0,
            expand_animations=False,
        )
    return tf.cond(
        tf.equal(tf.shape(image)[-1], 1),
        lambda: tf.gather(_bmp_palette(image_bytes, head), tf.cast(image[..., 0], tf.int32)),
        lambda: image[..., :3],
    )


def _bmp_fields(head: tf.Tensor) -> tf.Tensor:
    """The 13 little-endian int32 fields at bytes 14-66 of a BMP.

    Info header size, width, height, planes + 65536 * bits per pixel, compression,
    image size, x and y resolution, colours used, colours important, then the red,
    green and blue masks of BI_BITFIELDS.
    """
    return tf.io.decode_raw(tf.strings.substr(head, 14, 52), tf.int32, little_endian=True)


def _check_bmp(head: tf.Tensor, is_bmp: tf.Tensor) -> tf.Operation:
    """Asserts that a BMP is one that TensorFlow's BMP decoder reads right."""
    fields = _bmp_fields(head)
    info_size, compression = fields[0], fields[4]
    bits = tf.bitwise.bitwise_and(tf.bitwise.right_shift(fields[3], 16), 0xFFFF)
    uncompressed = tf.equal(compression, 0) & tf.reduce_any(tf.equal(bits, [8, 24, 32]))
    bit_fields = (
        tf.equal(compression, 3)
        & tf.equal(bits, 32)
        & tf.reduce_all(tf.equal(fields[10:13], _BMP_BGRA_MASKS))
    )
    return tf.debugging.Assert(
        tf.logical_not(is_bmp) | ((info_size >= 40) & (uncompressed | bit_fields)),
        [tf.strings.format(_BMP_MESSAGE, (bits, compression, info_size))],
    )


def _bmp_palette(image_bytes: tf.Tensor, head: tf.Tensor) -> tf.Tensor:
    """The colour table of an 8-bit BMP as uint8 [256, 3] RGB; entries past its end are black."""
    fields = _bmp_fields(head)
    info_size, colors_used = fields[0], fields[8]
    count = tf.where((colors_used <= 0) | (colors_used > 256), 256, colors_used)
    length = tf.strings.length(image_bytes)
    table = tf.strings.substr(
        tf.strings.join([image_bytes, b"\x00" * 1024]),
        tf.clip_by_value(14 + info_size, 0, length),
        1024,
    )
    blue_green_red = tf.reshape(tf.io.decode_raw(table, tf.uint8), [256, 4])[:, 2::-1]
    in_table = tf.range(256)[:, tf.newaxis] < count
    return tf.where(in_table, blue_green_red, tf.zeros_like(blue_green_red))


def preprocess_image(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decodes one encoded image and resizes it to float32 [image_size, image_size, 3] in [0, 1].

    An image whose header gives more than DEFAULT_MAX_PIXELS is refused before it is
    decoded (a decompression bomb), in training and in the exported signatures alike.
    An image already of the model's size is not resized: the antialiased resize would
    return it unchanged, at three times the cost of decoding it.
    """
    from datasets.image_header import checked_decode  # it builds on decode_image above

    image = checked_decode(image_bytes)
    height_width = tf.shape(image)[:2]

    def resized() -> tf.Tensor:
        image_resized = tf.image.resize(image, (image_size, image_size), antialias=True)
        return tf.clip_by_value(image_resized, 0.0, 255.0)

    image = tf.cond(
        tf.reduce_all(tf.equal(height_width, image_size)),
        lambda: tf.cast(image, tf.float32),
        resized,
    )
    image.set_shape([image_size, image_size, 3])
    return image / 255.0


def preprocess_image_batch(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decodes a batch of encoded images (string[B]) to float32 [B, image_size, image_size, 3]."""
    return tf.map_fn(
        lambda one: preprocess_image(one, image_size),
        image_bytes,
        fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32),
    )
