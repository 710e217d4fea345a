"""Pretrained word vectors (GloVe or word2vec text format) as an embedding matrix.

The file is streamed line by line and only the rows of vocabulary words are
kept, so multi-gigabyte files load in the memory of the vocabulary alone.
"""

import gzip
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datasets.text import RESERVED_TOKENS

MISSING_EXAMPLES = 10
MISSING_SCALE = 0.1


@dataclass(frozen=True, eq=False)
class WordVectors:
    """An embedding matrix built from a word-vector file for one vocabulary.

    Attributes:
        matrix: float32 [len(words), dimension]; row i is the vector of words[i].
            Row 0 (padding) is zeros; rows of reserved tokens and of words the
            file lacks are small seeded random normal vectors.
        dimension: the vector size read from the file.
        found: vocabulary words that have a vector in the file.
        total: vocabulary words looked up (all but row 0 and the reserved tokens).
        missing: up to ten of the words not found, in vocabulary order.
        source: the file name, for reports.
    """

    matrix: np.ndarray
    dimension: int
    found: int
    total: int
    missing: list[str]
    source: str

    def coverage_report(self) -> str:
        """One line such as "word vectors: 812 of 1000 vocabulary words found in
        glove.6B.100d.txt (81.2%); missing e.g. foo, bar"."""
        percent = 100.0 * self.found / self.total if self.total else 0.0
        report = (
            f"word vectors: {self.found} of {self.total} vocabulary words found in "
            f"{self.source} ({percent:.1f}%)"
        )
        if self.missing:
            report += "; missing e.g. " + ", ".join(self.missing)
        return report


def load_word_vectors(path: str | Path, words: Sequence[str], *, seed: int = 0) -> WordVectors:
    """Reads GloVe or word2vec text vectors (plain or gzip, UTF-8) for a vocabulary.

    Each line is a word followed by its values, separated by spaces; a first
    line "COUNT DIM" (word2vec text format) is read as a header. Words that
    contain spaces (a few lines of glove.840B) are kept whole. A vocabulary word
    takes the vector of the same word in the file, else the first file word
    equal to it when both are lower-cased. Values are only parsed on the lines
    of vocabulary words.

    Args:
        path: the vector file; ".gz" (or any gzip content) is decompressed on the fly.
        words: the vocabulary in id order, padding first, e.g. `vocabulary.tokens`
            of a `WordVocabulary`.
        seed: seed of the random rows of words without a vector.

    Returns:
        A `WordVectors` whose matrix has one row per entry of `words`.

    Raises:
        ValueError: naming the file (and line) when the file is missing or empty,
            a line's vector length differs from the others, a value is not a
            finite number, the file is not UTF-8, or no vocabulary word is found.

    Example:
        >>> vectors = load_word_vectors("glove.6B.100d.txt", vocabulary.tokens)
        >>> print(vectors.coverage_report())
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Word vector file {str(path)!r} does not exist.")
    if not words:
        raise ValueError(f"No vocabulary words to look up in {str(path)!r}: words is empty.")
    lookup = {
        index: word
        for index, word in enumerate(words)
        if index > 0 and word and word not in RESERVED_TOKENS
    }
    if not lookup:
        raise ValueError(
            f"No vocabulary words to look up in {str(path)!r}: words holds only padding and "
            f"reserved tokens."
        )
    exact_wanted = set(lookup.values())
    lower_wanted = {word.lower() for word in exact_wanted}
    exact: dict[str, np.ndarray] = {}
    lowered: dict[str, np.ndarray] = {}
    dimension = None
    for number, token, values, line_dimension in _read_vectors(path):
        dimension = line_dimension
        lower = token.lower()
        keep_exact = token in exact_wanted and token not in exact
        keep_lower = lower in lower_wanted and lower not in lowered
        if keep_exact or keep_lower:
            vector = _parse_values(values, dimension, path, number, token)
            if keep_exact:
                exact[token] = vector
            if keep_lower:
                lowered[lower] = vector
    if dimension is None:
        raise ValueError(f"Word vector file {str(path)!r} is empty: it holds no vectors.")

    rows: dict[int, np.ndarray] = {}
    missing: list[str] = []
    for index, word in lookup.items():
        vector = exact.get(word)
        if vector is None:
            vector = lowered.get(word.lower())
        if vector is None:
            missing.append(word)
        else:
            rows[index] = vector
    if not rows:
        examples = ", ".join(list(lookup.values())[:MISSING_EXAMPLES])
        raise ValueError(
            f"None of the {len(lookup)} vocabulary words (e.g. {examples}) has a vector in "
            f"{str(path)!r}: the vocabulary and the file do not overlap."
        )
    found = np.stack(list(rows.values()))
    scale = MISSING_SCALE * float(found.std()) or MISSING_SCALE
    matrix = np.random.default_rng(seed).normal(0.0, scale, (len(words), dimension))
    matrix = matrix.astype("float32")
    matrix[0] = 0.0
    matrix[list(rows)] = found
    return WordVectors(
        matrix=matrix,
        dimension=dimension,
        found=len(rows),
        total=len(lookup),
        missing=missing[:MISSING_EXAMPLES],
        source=path.name,
    )


def _read_vectors(path: Path) -> Iterator[tuple[int, str, bytes, int]]:
    """Yields (line number, word, raw values, dimension) per vector line, checking every
    line's length."""
    with path.open("rb") as probe:
        compressed = probe.read(2) == b"\x1f\x8b"
    opener = gzip.open if compressed else open
    dimension = None
    first_line = None
    with opener(path, "rb") as lines:
        for number, line in enumerate(lines, start=1):
            line = line.rstrip()
            if number == 1:
                line = line.removeprefix(b"\xef\xbb\xbf")
            if not line:
                continue
            if dimension is None:
                fields = line.split()
                if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
                    dimension, first_line = int(fields[1]), number  # word2vec header
                    continue
                dimension, first_line = len(fields) - 1, number
                if dimension < 1:
                    raise ValueError(
                        f"{path}:{number}: expected a word followed by its vector; "
                        f"got {_excerpt(line)!r}."
                    )
            if line.count(b" ") == dimension and b"\t" not in line and b"  " not in line:
                token, values = line.split(b" ", 1)
            else:
                token, values = _split_unusual_line(line, dimension, path, number, first_line)
            try:
                word = token.decode("utf-8")
            except UnicodeDecodeError as error:
                raise ValueError(
                    f"{path}:{number}: the word is not valid UTF-8 ({error})."
                ) from None
            yield number, word, values, dimension


def _split_unusual_line(
    line: bytes, dimension: int, path: Path, number: int, first_line: int
) -> tuple[bytes, bytes]:
    """Splits a line with tabs, repeated spaces or a word containing spaces."""
    fields = line.split()
    if len(fields) - 1 == dimension:
        return fields[0], b" ".join(fields[1:])
    if len(fields) - 1 > dimension and not _is_number(fields[1]):
        return b" ".join(fields[:-dimension]), b" ".join(fields[-dimension:])
    raise ValueError(
        f"{path}:{number}: the vector has {len(fields) - 1} values, but the file's vectors "
        f"have {dimension} (as set by line {first_line})."
    )


def _parse_values(values: bytes, dimension: int, path: Path, number: int, word: str) -> np.ndarray:
    try:
        vector = np.array([float(value) for value in values.split()], dtype="float32")
    except ValueError:
        vector = None
    if vector is None or not np.all(np.isfinite(vector)):
        raise ValueError(
            f"{path}:{number}: the vector of {word!r} holds a value that is not "
            f"a finite number: {_excerpt(values)!r}."
        )
    if len(vector) != dimension:
        raise ValueError(
            f"{path}:{number}: the vector of {word!r} has {len(vector)} values, but the file's "
            f"vectors have {dimension}."
        )
    return vector


def _is_number(field: bytes) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _excerpt(text: bytes) -> str:
    decoded = text.decode("utf-8", errors="replace")
    return decoded if len(decoded) <= 60 else decoded[:57] + "..."
