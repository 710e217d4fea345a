"""Subword (WordPiece) text vectorization with tensorflow-text.

The vocabulary is learned from the training split only, with tensorflow-text's
BERT vocabulary learner, after the same standardization as the word vocabulary
(`datasets.text.standardize`). Every character seen in training gets a piece, so
a word never seen in training (a typo, a new name) becomes known pieces instead
of <unk>. The vocabulary is saved inside every export as graph constants, like
the word vocabulary; tokenizing needs one tensorflow-text op
(`WordpieceTokenizeWithOffsets`), and detokenizing is core TensorFlow.
"""

from collections.abc import Iterable

import tensorflow as tf

from datasets.text import TokenFile, kept_ids, padded_ids, standardize

PAD, UNK, START, END = "[PAD]", "[UNK]", "[START]", "[END]"
# The same ids as the word vocabulary's reserved tokens (datasets.text), which the
# models, losses and caption decoding rely on.
RESERVED_TOKENS = (PAD, UNK, START, END)
SUFFIX_INDICATOR = "##"
# A longer word is one [UNK] (BERT's limit is 100 characters per word).
MAX_BYTES_PER_WORD = 100


def import_tensorflow_text():
    """tensorflow_text, or an error saying how to get it."""
    try:
        import tensorflow_text
    except ImportError as error:
        raise ValueError(
            "--tokenizer wordpiece needs tensorflow-text (pip install tensorflow-text, "
            f"the version in requirements.txt): {error}"
        ) from error
    return tensorflow_text


def learn_wordpieces(texts: Iterable[str], vocabulary_size: int) -> list[str]:
    """Learns WordPiece tokens from training texts with tensorflow-text's learner.

    Returns the pieces after the reserved tokens. `vocabulary_size` (reserved tokens
    included) is the learner's target: it lands within a few percent of it, and every
    character of the texts is kept, as a word start and as a suffix, whatever the size.
    """
    import_tensorflow_text()
    from tensorflow_text.tools.wordpiece_vocab import bert_vocab_from_dataset as learner

    standardized = standardize(tf.constant(list(texts) or [""]))
    if not any(standardized.numpy()):
        raise ValueError("Cannot learn a WordPiece vocabulary: the training texts have no words.")
    pieces = learner.bert_vocab_from_dataset(
        tf.data.Dataset.from_tensor_slices(standardized).batch(1024),
        vocab_size=vocabulary_size,
        reserved_tokens=list(RESERVED_TOKENS),
        # The texts are already lowercased and split at punctuation, as the graph does.
        bert_tokenizer_params={"lower_case": False},
        learn_params={},
    )
    return [piece for piece in pieces if piece not in RESERVED_TOKENS]


class WordPieceVocabulary(TokenFile, tf.Module):
    """Maps text to padded subword ids and ids back to clean text.

    Ids 0-3 are reserved for padding, unknown pieces, start and end of sequence; a
    piece that continues a word starts with "##". The interface is WordVocabulary's;
    `save` writes BERT's vocab.txt layout.

    Args:
        pieces: the WordPiece tokens after the reserved tokens.

    Example:
        >>> vocabulary = WordPieceVocabulary.from_texts(["a red circle", "a red square"], 60)
        >>> vocabulary.encode(tf.constant(["a red circel"]), 12, add_start_end=True)
    """

    kind = "wordpiece"

    def __init__(self, pieces: Iterable[str], name: str | None = None):
        super().__init__(name=name)
        tensorflow_text = import_tensorflow_text()
        self.pieces = [piece for piece in pieces if piece not in RESERVED_TOKENS]
        tokens = list(RESERVED_TOKENS) + self.pieces
        self.size = len(tokens)
        self._tokens = tf.constant(tokens)
        # -1 for a piece not in the vocabulary: the tokenizer tries a shorter one.
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(self._tokens, tf.range(self.size, dtype=tf.int64)),
            default_value=-1,
        )
        self._tokenizer = tensorflow_text.WordpieceTokenizer(
            self._table,
            suffix_indicator=SUFFIX_INDICATOR,
            max_bytes_per_word=MAX_BYTES_PER_WORD,
            token_out_type=tf.int64,
            unknown_token=UNK,
        )

    @property
    def tokens(self) -> list[str]:
        """Every token in id order, reserved tokens first."""
        return list(RESERVED_TOKENS) + self.pieces

    @classmethod
    def from_texts(cls, texts: Iterable[str], max_size: int) -> "WordPieceVocabulary":
        """Learns the vocabulary from training texts (`learn_wordpieces`)."""
        return cls(learn_wordpieces(texts, max_size))

    def encode(
        self, texts: tf.Tensor, sequence_length: int, add_start_end: bool = False
    ) -> tf.Tensor:
        """Turns string[B] into int32[B, sequence_length] piece ids, truncating and padding."""
        words = tf.strings.split(standardize(texts))
        pieces = self._tokenizer.tokenize(words)  # [B, words, pieces]
        ids = tf.cast(pieces.merge_dims(1, 2), tf.int32)
        return padded_ids(ids, sequence_length, add_start_end)

    def decode(self, ids: tf.Tensor) -> tf.Tensor:
        """Turns int[B, T] into string[B] of whole words: stops at the end token, drops
        reserved tokens and glues each "##" piece to the piece before it."""
        pieces = tf.gather(self._tokens, kept_ids(ids))
        text = tf.strings.reduce_join(pieces, axis=1, separator=" ")
        # Pieces hold no spaces, and "#" cannot start a word (punctuation is split off).
        return tf.strings.regex_replace(text, f"(^| ){SUFFIX_INDICATOR}", "")
