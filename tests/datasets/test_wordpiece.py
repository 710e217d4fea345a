"""WordPiece vocabularies: learned from training texts, subwords for unseen words."""

import numpy as np
import pytest
import tensorflow as tf

from datasets.text import END_ID, PAD_ID, START_ID, UNK_ID
from datasets.tokenizers import build_text_vocabulary, load_text_vocabulary
from datasets.wordpiece import RESERVED_TOKENS, WordPieceVocabulary

TRAINING_TEXTS = [
    "a red circle above a blue square",
    "two green triangles on the left",
    "a small red square left of a large circle",
    "the blue circle is below the green triangle",
] * 20


@pytest.fixture(scope="module")
def vocabulary() -> WordPieceVocabulary:
    return build_text_vocabulary(TRAINING_TEXTS, "wordpiece", max_size=120)


def pieces(vocabulary, text: str) -> list[str]:
    ids = vocabulary.encode(tf.constant([text]), 16).numpy()[0]
    return [vocabulary.tokens[i] for i in ids if i != PAD_ID]


def test_reserved_tokens_keep_the_ids_the_models_rely_on(vocabulary):
    assert vocabulary.tokens[:4] == list(RESERVED_TOKENS)
    assert [vocabulary.tokens[i] for i in (PAD_ID, UNK_ID, START_ID, END_ID)] == [
        "[PAD]",
        "[UNK]",
        "[START]",
        "[END]",
    ]
    assert vocabulary.size == len(vocabulary.tokens) == len(set(vocabulary.tokens))


def test_frequent_training_words_are_single_pieces(vocabulary):
    assert pieces(vocabulary, "A red CIRCLE, above!") == ["a", "red", "circle", "above"]


def test_a_misspelling_becomes_known_subword_pieces_not_unk(vocabulary):
    assert "circel" not in vocabulary.tokens  # never seen in training
    split = pieces(vocabulary, "circel")
    assert len(split) > 1 and "[UNK]" not in split
    assert split[0] == "c" and all(piece.startswith("##") for piece in split[1:])
    assert vocabulary.decode_numpy(vocabulary.encode(tf.constant(["red circel"]), 8).numpy()) == [
        "red circel"
    ]


def test_a_character_never_seen_in_training_makes_its_word_unknown(vocabulary):
    assert pieces(vocabulary, "red zebra") == ["red", "[UNK]"]


def test_the_vocabulary_comes_from_the_training_texts_only(vocabulary):
    assert "hexagon" not in vocabulary.tokens and "##x" not in vocabulary.tokens
    other = build_text_vocabulary([*TRAINING_TEXTS, "a hexagon"], "wordpiece", max_size=120)
    assert "##x" in other.tokens


def test_encoding_frames_truncates_and_pads(vocabulary):
    ids = vocabulary.encode(tf.constant(["a red circel", ""]), 6, add_start_end=True).numpy()
    assert ids.dtype == np.int32 and ids.shape == (2, 6)
    assert ids[0, 0] == START_ID and ids[0, -1] == END_ID  # 7 pieces cut to 4 + frame
    assert ids[1].tolist() == [START_ID, END_ID, 0, 0, 0, 0]


def test_decoding_glues_pieces_and_drops_reserved_tokens(vocabulary):
    index = {token: i for i, token in enumerate(vocabulary.tokens)}
    ids = [START_ID, index["red"], index["c"], index["##i"], index["##r"], index["##c"]]
    ids += [UNK_ID, index["##e"], index["##l"], END_ID, index["blue"], PAD_ID]
    assert vocabulary.decode_numpy(np.array([ids])) == ["red circel"]
    # A caption that starts with a suffix piece loses its "##" too.
    assert vocabulary.decode_numpy(np.array([[index["##e"], index["red"]]])) == ["e red"]


def test_save_and_load_give_the_same_ids(vocabulary, tmp_path):
    path = vocabulary.save(tmp_path / "vocabulary.txt")
    assert path.read_text(encoding="utf-8").splitlines()[:4] == list(RESERVED_TOKENS)
    loaded = load_text_vocabulary(path, "wordpiece")
    texts = tf.constant(["a red circel", "two triangles"])
    np.testing.assert_array_equal(loaded.encode(texts, 10), vocabulary.encode(texts, 10))


def test_it_tokenizes_inside_tf_data_and_a_traced_signature(vocabulary):
    dataset = tf.data.Dataset.from_tensor_slices(["a red circel", "blue"]).batch(2)
    (batch,) = dataset.map(lambda texts: vocabulary.encode(texts, 8)).as_numpy_iterator()
    signature = tf.function(
        lambda texts: vocabulary.decode(vocabulary.encode(texts, 8)),
        input_signature=[tf.TensorSpec([None], tf.string)],
    )
    assert batch.shape == (2, 8)
    assert signature(tf.constant(["a red circel"])).numpy().tolist() == [b"a red circel"]


def test_the_word_tokenizer_gives_unk_where_wordpiece_gives_pieces():
    words = build_text_vocabulary(TRAINING_TEXTS, "word", max_size=120)
    ids = words.encode(tf.constant(["circel"]), 4).numpy()[0]
    assert ids.tolist() == [UNK_ID, 0, 0, 0]


def test_an_unknown_tokenizer_is_refused():
    with pytest.raises(ValueError, match="Unknown tokenizer 'bpe'.*word.*wordpiece"):
        build_text_vocabulary(TRAINING_TEXTS, "bpe", max_size=100)


def test_texts_without_words_cannot_make_a_vocabulary():
    with pytest.raises(ValueError, match="no words"):
        WordPieceVocabulary.from_texts(["", "!!"], 100)
