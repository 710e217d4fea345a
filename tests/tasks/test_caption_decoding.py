"""Greedy and beam-search decoding on a decoder with known probabilities."""

import numpy as np
import tensorflow as tf

from datasets.text import END_ID, PAD_ID, START_ID
from tasks.caption_decoding import beam_search_decode, caption_attention, greedy_decode

VOCABULARY = 8
A, B, C, D, E = 4, 5, 6, 7, 3  # word ids; E is <end>


def table_decoder(probabilities_after):
    """A causal decoder whose next-token distribution depends on the previous token."""

    def decoder(inputs, training=False):
        tokens = inputs["tokens"]
        rows = tf.gather(tf.constant(probabilities_after, tf.float32), tokens)
        return tf.math.log(rows + 1e-9)

    return decoder


def distribution(**weights):
    row = np.full(VOCABULARY, 1e-6, dtype=np.float32)
    for token, weight in weights.items():
        row[int(token.removeprefix("t"))] = weight
    return row / row.sum()


def transitions():
    table = np.tile(distribution(**{f"t{END_ID}": 1.0}), (VOCABULARY, 1))
    table[START_ID] = distribution(**{f"t{A}": 0.6, f"t{B}": 0.4})
    # After A the mass spreads (best 0.34); after B the caption ends with 0.99.
    table[A] = distribution(**{f"t{C}": 0.34, f"t{D}": 0.33, f"t{END_ID}": 0.33})
    table[B] = distribution(**{f"t{END_ID}": 0.99, f"t{C}": 0.01})
    table[C] = distribution(**{f"t{END_ID}": 1.0})
    table[D] = distribution(**{f"t{END_ID}": 1.0})
    table[PAD_ID] = distribution(**{f"t{END_ID}": 1.0})
    return table


def features(batch):
    return {"image_features": tf.zeros([batch, 3])}


def test_greedy_takes_the_locally_best_token_each_step():
    ids = greedy_decode(table_decoder(transitions()), features(2), steps=5).numpy()
    assert ids.tolist() == [[A, C, END_ID, END_ID, END_ID]] * 2


def test_beam_search_finds_the_more_likely_caption_that_greedy_misses():
    decoder = table_decoder(transitions())
    ids = beam_search_decode(decoder, features(3), steps=5, beam_size=2).numpy()
    # P(B, end) = 0.396 beats P(A, C, end) = 0.204 even after length normalisation.
    assert ids[:, :2].tolist() == [[B, END_ID]] * 3
    assert np.all(ids[:, 2:] == PAD_ID)


def test_beam_search_of_one_is_greedy():
    decoder = table_decoder(transitions())
    np.testing.assert_array_equal(
        beam_search_decode(decoder, features(1), steps=4, beam_size=1),
        greedy_decode(decoder, features(1), steps=4),
    )


def test_decoding_runs_as_one_traced_graph_for_any_batch():
    decoder = table_decoder(transitions())
    decode = tf.function(
        lambda image_features: beam_search_decode(
            decoder, {"image_features": image_features}, steps=5, beam_size=3
        ),
        input_signature=[tf.TensorSpec([None, 3], tf.float32)],
    )
    assert decode(tf.zeros([4, 3])).shape == (4, 5)
    assert decode(tf.zeros([0, 3])).shape == (0, 5)


def with_attention(decoder, regions=3):
    """The decoder as one returning a dict; attention at each step marks the input token."""

    def decoder_with_attention(inputs, training=False):
        tokens = inputs["tokens"]
        attention = tf.one_hot(tokens % regions, regions) * 0.5 + 0.5 / regions
        return {"logits": decoder(inputs, training), "attention": attention}

    return decoder_with_attention


def test_decoders_returning_a_dict_decode_the_same():
    decoder = table_decoder(transitions())
    for beam_size in (1, 2):
        np.testing.assert_array_equal(
            beam_search_decode(with_attention(decoder), features(2), steps=5, beam_size=beam_size),
            beam_search_decode(decoder, features(2), steps=5, beam_size=beam_size),
        )


def test_caption_attention_has_one_row_per_word_of_the_caption():
    decoder = with_attention(table_decoder(transitions()))
    ids = tf.constant([[A, C, END_ID, PAD_ID, PAD_ID], [B, END_ID, PAD_ID, PAD_ID, PAD_ID]])
    attention = caption_attention(decoder, features(2), ids).numpy()
    assert attention.shape == (2, 5, 3) and attention.dtype == np.float32
    # Teacher-forced on <start> and the caption: the row of a word saw the token before it.
    expected_first = decoder({"tokens": tf.constant([[START_ID, A, C, 0, 0]])})["attention"]
    np.testing.assert_allclose(attention[0, :2], expected_first[0, :2])
    np.testing.assert_allclose(attention.sum(-1), [[1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])


def test_caption_attention_of_a_caption_that_never_ends_covers_every_step():
    decoder = with_attention(table_decoder(transitions()))
    attention = caption_attention(decoder, features(1), tf.constant([[A, C, D, A]])).numpy()
    np.testing.assert_allclose(attention.sum(-1), [[1, 1, 1, 1]])
