"""Word-level text vectorization on core TensorFlow ops.

The vocabulary is built from the training split only and is saved inside every
export (as graph constants), so the exported signatures need no file beside them
and no tf-text op: a stock TF Serving binary runs them.
"""

import collections
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tensorflow as tf

PAD, UNK, START, END = "<pad>", "<unk>", "<start>", "<end>"
RESERVED_TOKENS = (PAD, UNK, START, END)
PAD_ID, UNK_ID, START_ID, END_ID = range(4)


def standardize(texts: tf.Tensor) -> tf.Tensor:
    """Lowercases, turns punctuation into spaces and collapses runs of whitespace.

    Invalid UTF-8 is replaced (U+FFFD) rather than failing, so one bad string in a
    request or a dataset cannot stop the rest.
    """
    texts = tf.strings.unicode_transcode(
        texts, "UTF-8", "UTF-8", errors="replace", replace_control_characters=True
    )
    texts = tf.strings.lower(texts, encoding="utf-8")
    texts = tf.strings.regex_replace(texts, r"[[:punct:]]", " ")
    texts = tf.strings.regex_replace(texts, r"\s+", " ")
    return tf.strings.strip(texts)


def split_words(texts: Iterable[str]) -> list[list[str]]:
    """Standardizes and splits Python strings exactly as the graph does."""
    texts = list(texts)
    if not texts:
        return []
    standardized = standardize(tf.constant(texts)).numpy()
    return [line.decode("utf-8").split() for line in standardized]


def padded_ids(ids: tf.RaggedTensor, sequence_length: int, add_start_end: bool) -> tf.Tensor:
    """Ragged int32 ids [B, (n)] -> int32 [B, sequence_length]: optionally framed by
    <start>/<end>, truncated (before the end token) and zero-padded."""
    if add_start_end:
        ids = ids[:, : sequence_length - 2]
        batch = ids.nrows(out_type=tf.int32)
        start = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], START_ID))
        end = tf.RaggedTensor.from_tensor(tf.fill([batch, 1], END_ID))
        ids = tf.concat([start, ids, end], axis=1)
    ids = ids.to_tensor(default_value=PAD_ID, shape=[None, sequence_length])
    return tf.ensure_shape(ids, [None, sequence_length])


def kept_ids(ids: tf.Tensor) -> tf.RaggedTensor:
    """int[B, T] -> ragged int32 [B, (n)]: the ids before the first end token, without
    reserved ones: what a decoded text is made of."""
    ids = tf.cast(ids, tf.int32)
    before_end = tf.equal(tf.cumsum(tf.cast(tf.equal(ids, END_ID), tf.int32), axis=1), 0)
    keep = tf.logical_and(before_end, ids >= len(RESERVED_TOKENS))
    return tf.ragged.boolean_mask(ids, keep)


class TokenFile:
    """Reading and writing a vocabulary as one token per line, in id order.

    For a class built from its tokens after the reserved ones (reserved tokens in
    the file are skipped by the constructor) that lists them all in `tokens`.
    """

    @classmethod
    def load(cls, path: str | Path):
        """Reads a vocabulary written by `save`."""
        return cls(Path(path).read_text(encoding="utf-8").splitlines())

    def to_text(self) -> str:
        """One token per line, reserved tokens first: the format `load` reads."""
        return "\n".join(self.tokens) + "\n"

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_text(), encoding="utf-8")
        return path

    def decode_numpy(self, ids: np.ndarray) -> list[str]:
        """`decode` on a numpy array, as Python strings."""
        return [text.decode("utf-8") for text in self.decode(tf.constant(ids)).numpy()]


class WordVocabulary(TokenFile, tf.Module):
    """Maps text to padded token ids and ids back to text.

    Ids 0-3 are reserved for padding, unknown words, start and end of sequence.

    Args:
        words: the vocabulary after the reserved tokens, most frequent first.

    Example:
        >>> vocabulary = WordVocabulary.from_texts(["a red circle", "a blue square"])
        >>> vocabulary.encode(tf.constant(["a red square"]), 6, add_start_end=True)
    """

    kind = "word"

    def __init__(self, words: Iterable[str], name: str | None = None):
        super().__init__(name=name)
        self.words = [word for word in words if word not in RESERVED_TOKENS]
        tokens = list(RESERVED_TOKENS) + self.words
        self.size = len(tokens)
        self._tokens = tf.constant(tokens)
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(self._tokens, tf.range(self.size, dtype=tf.int64)),
            default_value=UNK_ID,
        )

    @property
    def tokens(self) -> list[str]:
        """Every token in id order, reserved tokens first."""
        return list(RESERVED_TOKENS) + self.words

    @classmethod
    def from_texts(
        cls, texts: Iterable[str], max_size: int | None = None, min_count: int = 1
    ) -> "WordVocabulary":
        """Builds the vocabulary from training texts, most frequent words first."""
        counts = collections.Counter(word for words in split_words(texts) for word in words)
        ranked = sorted(
            (word for word, count in counts.items() if count >= min_count),
            key=lambda word: (-counts[word], word),
        )
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(RESERVED_TOKENS))]
        if not ranked:
            raise ValueError("Cannot build a vocabulary: the training texts contain no words.")
        return cls(ranked)

    def encode(
        self, texts: tf.Tensor, sequence_length: int, add_start_end: bool = False
    ) -> tf.Tensor:
        """Turns string[B] into int32[B, sequence_length], truncating and zero-padding."""
        words = tf.strings.split(standardize(texts))
        ids = tf.cast(self._table.lookup(words), tf.int32)
        return padded_ids(ids, sequence_length, add_start_end)

    def decode(self, ids: tf.Tensor) -> tf.Tensor:
        """Turns int[B, T] into string[B]: stops at the end token, drops reserved tokens."""
        words = tf.gather(self._tokens, kept_ids(ids))
        return tf.strings.reduce_join(words, axis=1, separator=" ")
