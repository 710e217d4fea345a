"""Greedy and beam-search caption decoding in TensorFlow graph ops.

Both run the teacher-forced `caption_decoder` over the whole (fixed-length)
token buffer at each step and read the logits at the current position. The
decoder is causal, so positions after the current one do not matter; one fixed
shape keeps a single traced graph, which the export reuses as it is.
"""

import tensorflow as tf

from datasets.text import END_ID, PAD_ID, START_ID


def _tile(features: dict, beam_size: int) -> dict:
    return {key: tf.repeat(value, beam_size, axis=0) for key, value in features.items()}


def greedy_decode(decoder, features: dict, steps: int) -> tf.Tensor:
    """Returns int32 [B, steps]: the most likely token at each step after <start>."""
    batch = tf.shape(next(iter(features.values())))[0]
    tokens = tf.concat(
        [tf.fill([batch, 1], START_ID), tf.zeros([batch, steps - 1], tf.int32)], axis=1
    )
    generated = tf.zeros([batch, steps], tf.int32)
    for step in tf.range(steps):
        logits = decoder({**features, "tokens": tokens}, training=False)[:, step]
        next_token = tf.argmax(logits, axis=-1, output_type=tf.int32)
        generated += tf.one_hot(step, steps, dtype=tf.int32) * next_token[:, None]
        if step + 1 < steps:
            tokens += tf.one_hot(step + 1, steps, dtype=tf.int32) * next_token[:, None]
    return generated


def beam_search_decode(
    decoder, features: dict, steps: int, beam_size: int, length_penalty: float = 1.0
) -> tf.Tensor:
    """Returns int32 [B, steps]: the best of `beam_size` beams, scored by
    log-probability / length**length_penalty.
    """
    if beam_size == 1:
        return greedy_decode(decoder, features, steps)
    batch = tf.shape(next(iter(features.values())))[0]
    features = _tile(features, beam_size)
    rows = batch * beam_size
    tokens = tf.concat([tf.fill([rows, 1], START_ID), tf.zeros([rows, steps - 1], tf.int32)], 1)
    generated = tf.zeros([batch, beam_size, steps], tf.int32)
    # Only beam 0 is live at first, so the first step does not pick one token k times.
    scores = tf.tile(tf.concat([[0.0], tf.fill([beam_size - 1], -1e9)], axis=0)[None], [batch, 1])
    finished = tf.zeros([batch, beam_size], tf.bool)
    lengths = tf.zeros([batch, beam_size], tf.float32)
    for step in tf.range(steps):
        tf.autograph.experimental.set_loop_options(
            shape_invariants=[
                (scores, tf.TensorShape([None, beam_size])),
                (finished, tf.TensorShape([None, beam_size])),
                (lengths, tf.TensorShape([None, beam_size])),
                (generated, tf.TensorShape([None, beam_size, steps])),
                (tokens, tf.TensorShape([None, steps])),
            ]
        )
        logits = decoder({**features, "tokens": tokens}, training=False)[:, step]
        log_probs = tf.reshape(
            tf.nn.log_softmax(tf.cast(logits, tf.float32)), [batch, beam_size, -1]
        )
        vocabulary_size = tf.shape(log_probs)[-1]
        # A finished beam can only extend with padding, at no cost.
        pad_only = tf.one_hot(PAD_ID, vocabulary_size, on_value=0.0, off_value=-1e9)
        log_probs = tf.where(finished[:, :, None], pad_only[None, None], log_probs)
        candidates = tf.reshape(scores[:, :, None] + log_probs, [batch, -1])
        scores, flat_index = tf.math.top_k(candidates, k=beam_size)
        parent = flat_index // vocabulary_size
        token = flat_index % vocabulary_size
        generated = tf.gather(generated, parent, batch_dims=1)
        generated += tf.one_hot(step, steps, dtype=tf.int32)[None, None] * token[:, :, None]
        was_finished = tf.gather(finished, parent, batch_dims=1)
        lengths = tf.gather(lengths, parent, batch_dims=1) + tf.cast(~was_finished, tf.float32)
        finished = was_finished | tf.equal(token, END_ID)
        tokens = tf.reshape(
            tf.gather(tf.reshape(tokens, [batch, beam_size, steps]), parent, batch_dims=1),
            [rows, steps],
        )
        if step + 1 < steps:
            tokens += tf.one_hot(step + 1, steps, dtype=tf.int32) * tf.reshape(token, [rows, 1])
    normalized = scores / tf.pow(tf.maximum(lengths, 1.0), length_penalty)
    best = tf.argmax(normalized, axis=1, output_type=tf.int32)
    return tf.gather(generated, best, batch_dims=1)
