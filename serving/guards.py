"""Checks at the top of every serving signature, so that no request can crash the server.

A loaded signature does not enforce the rank of its TensorSpec, and two inputs
of different batch sizes would be broadcast silently (shared/UPSTREAM.md,
"Serving signatures"), so every signature checks both itself. Image bytes are
refused when empty, over MAX_IMAGE_BYTES or of an unsupported format before any
decoder runs (the pixel cap of datasets/image_header.py follows, read from the
header); text is cut to a bound tied to the model's sequence length and invalid
UTF-8 in it is replaced. Every refusal is a `tf.errors.InvalidArgumentError`
whose message names the input (and the element) at fault. Core TensorFlow ops
only: an export loads in a process that imports only TensorFlow.
"""

from collections.abc import Callable

import tensorflow as tf

from datasets.image_header import MAX_IMAGE_BYTES, first_true
from datasets.images import preprocess_image_batch

# Text kept per token of the model's sequence length: a text of sequence_length
# words loses none of them unless its words average over 63 characters.
CHARACTERS_PER_TOKEN = 64
_UTF8_BYTES_PER_CHARACTER = 4
_HEAD_BYTES = 12  # the bytes that say an image's format, also shown in messages
# (offset, bytes) that each must match, per format decoded by datasets/images.py.
_IMAGE_SIGNATURES = (
    ((0, b"\xff\xd8\xff"),),
    ((0, b"\x89PNG\r\n\x1a\n"),),
    ((0, b"GIF8"),),
    ((0, b"BM"),),
    ((0, b"RIFF"), (8, b"WEBP")),
)


def batch_of_strings(values: tf.Tensor, name: str) -> tf.Tensor:
    """Ensures `values` is string[None] at run time (EnsureShape), naming the input in the op."""
    return tf.ensure_shape(values, [None], name=f"{name}_must_be_a_batch")


def same_batch_size(
    first: tf.Tensor, first_name: str, second: tf.Tensor, second_name: str
) -> tuple[tf.Tensor, tf.Tensor]:
    """Checks that two inputs are string batches of one size; never broadcasts one to the other.

    Args:
        first: the first input, string[None].
        first_name: its name in the signature, for the messages.
        second: the second input, string[None].
        second_name: its name in the signature.

    Returns:
        (first, second), computed only after both checks passed.

    Raises:
        tf.errors.InvalidArgumentError: an input that is not of rank 1, or two
            batch sizes that differ (the message gives both).
    """
    first = batch_of_strings(first, first_name)
    second = batch_of_strings(second, second_name)
    first_size, second_size = tf.shape(first)[0], tf.shape(second)[0]
    check = tf.debugging.Assert(
        tf.equal(first_size, second_size),
        [
            tf.strings.format(
                f"serving/guards.py: {first_name} holds {{}} and {second_name} {{}} elements; "
                "a request must give as many of each (inputs are never broadcast)",
                (first_size, second_size),
            )
        ],
    )
    with tf.control_dependencies([check]):
        return tf.identity(first), tf.identity(second)


def images_from_bytes(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """string[B] of encoded images -> float32 [B, S, S, 3], decoded only after every check.

    Each element must be non-empty, at most MAX_IMAGE_BYTES long and start like a
    JPEG, PNG, GIF, BMP or WebP file; `preprocess_image_batch` then refuses an image
    whose header gives too many pixels, still before decoding it. A decoder's own
    error (a truncated or corrupt file) is raised under the name scope
    "decode_image_bytes", which its message shows.

    Args:
        image_bytes: the input, string[None] of encoded images.
        image_size: the model's image side in pixels.

    Raises:
        tf.errors.InvalidArgumentError: the input is not of rank 1, or an element
            fails a check (the message names image_bytes[index] and the reason).
    """
    image_bytes = batch_of_strings(image_bytes, "image_bytes")
    sizes = tf.strings.length(image_bytes)
    # Padded to _HEAD_BYTES: substr past the end of a string is an error, not a short result.
    head = tf.strings.substr(
        tf.strings.join([tf.strings.substr(image_bytes, 0, _HEAD_BYTES), b"\x00" * _HEAD_BYTES]),
        0,
        _HEAD_BYTES,
    )
    known_format = tf.reduce_any(
        [
            tf.reduce_all(
                [
                    tf.equal(tf.strings.substr(head, offset, len(part)), part)
                    for offset, part in parts
                ],
                axis=0,
            )
            for parts in _IMAGE_SIGNATURES
        ],
        axis=0,
    )
    checks = [
        (
            sizes > 0,
            "serving/guards.py: image_bytes[{}] is empty (0 bytes); expected an encoded "
            "JPEG, PNG, GIF, BMP or WebP image",
            None,
        ),
        (
            sizes <= MAX_IMAGE_BYTES,
            "serving/guards.py: image_bytes[{}] is {} bytes, over the cap of "
            f"MAX_IMAGE_BYTES={MAX_IMAGE_BYTES}; refused before decoding",
            sizes,
        ),
        (
            known_format,
            "serving/guards.py: image_bytes[{}] is not a JPEG, PNG, GIF, BMP or WebP image: "
            "its first bytes are {} (decimal)",
            tf.strings.substr(image_bytes, 0, _HEAD_BYTES),
        ),
    ]
    check = tf.no_op()
    for valid, message, values in checks:  # one after the other: the first failure is reported
        with tf.control_dependencies([check]):
            check = _assert_every(valid, message, values)
    with tf.control_dependencies([check]), tf.name_scope("decode_image_bytes"):
        return preprocess_image_batch(tf.identity(image_bytes), image_size)


def texts_from_strings(text: tf.Tensor, name: str, sequence_length: int) -> tf.Tensor:
    """Raw text string[B] -> valid UTF-8 string[B], each at most CHARACTERS_PER_TOKEN per token.

    The bytes are cut first (at 4 bytes per character, so the cost does not grow
    with the request), then invalid UTF-8 becomes U+FFFD instead of an error, then
    the text is cut to CHARACTERS_PER_TOKEN * sequence_length characters, on a
    character boundary. An empty text stays empty: it is a valid input.

    Args:
        text: the input, string[None].
        name: its name in the signature ("text", "question"), for the rank message.
        sequence_length: the model's text length in tokens.

    Raises:
        tf.errors.InvalidArgumentError: the input is not of rank 1.
    """
    text = batch_of_strings(text, name)
    characters = CHARACTERS_PER_TOKEN * sequence_length
    text = tf.strings.substr(text, 0, _UTF8_BYTES_PER_CHARACTER * characters)
    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")
    return tf.strings.substr(text, 0, characters, unit="UTF8_CHAR")


def _assert_every(valid: tf.Tensor, message: str, values: tf.Tensor | None = None) -> tf.Operation:
    """Asserts that `valid` (bool[B]) holds everywhere; the message names the first failing index.

    Args:
        valid: one flag per element of the batch.
        message: a `tf.strings.format` template for the index, then (when given)
            that element's value.
        values: per-element values [B] to show beside the index.
    """
    flags = tf.concat([tf.logical_not(valid), [True]], axis=0)
    index = first_true(flags)
    shown = [index]
    if values is not None:
        shown.append(_value_at(values, index))
    text = tf.strings.format(message, shown, summarize=_HEAD_BYTES)
    return tf.debugging.Assert(tf.reduce_all(valid), [text])


def _value_at(values: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """values[index], or zero past the end; a string as its byte values (it may not be UTF-8)."""
    padded = tf.concat([values, tf.zeros([1], values.dtype)], axis=0)
    value = padded[index]
    if values.dtype == tf.string:
        return tf.io.decode_raw(value, tf.uint8)
    return value


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
