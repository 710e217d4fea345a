"""The text vocabularies a model can be trained with (`--tokenizer`).

"word" (datasets.text) uses core TensorFlow ops only, so its exports run on any
TensorFlow and any TF Serving build; "wordpiece" (datasets.wordpiece) splits
rare and unseen words into subword pieces, and its exports need the
tensorflow-text op that tokenizes.
"""

from collections.abc import Iterable
from pathlib import Path

from datasets.text import WordVocabulary
from datasets.wordpiece import WordPieceVocabulary

TOKENIZERS = ("word", "wordpiece")
TextVocabulary = WordVocabulary | WordPieceVocabulary


def vocabulary_class(tokenizer: str):
    if tokenizer == "word":
        return WordVocabulary
    if tokenizer == "wordpiece":
        return WordPieceVocabulary
    raise ValueError(f"Unknown tokenizer {tokenizer!r}; choose one of {list(TOKENIZERS)}.")


def build_text_vocabulary(texts: Iterable[str], tokenizer: str, max_size: int) -> TextVocabulary:
    """The vocabulary of the training texts: words (at most `max_size` tokens) or
    WordPiece pieces (about `max_size`)."""
    return vocabulary_class(tokenizer).from_texts(texts, max_size=max_size)


def load_text_vocabulary(path: str | Path, tokenizer: str) -> TextVocabulary:
    """Reads a vocabulary file (an export's assets.extra/vocabulary.txt)."""
    return vocabulary_class(tokenizer).load(path)
