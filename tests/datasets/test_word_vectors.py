"""Loading GloVe and word2vec text vectors into an embedding matrix."""

import gzip

import numpy as np
import pytest
import tensorflow as tf

from datasets.text import RESERVED_TOKENS
from datasets.word_vectors import WordVectors, load_word_vectors

GLOVE = """the 0.1 0.2 0.3
red 1.0 -1.0 0.5
circle 2.5 0.0 -0.25
Blue 3.0 3.0 3.0
unused 9.0 9.0 9.0
"""
WORDS = [*RESERVED_TOKENS, "the", "red", "circle", "blue", "square"]


def write(tmp_path, text, name="vectors.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def check_glove_rows(vectors: WordVectors):
    assert vectors.matrix.dtype == np.float32
    assert vectors.matrix.shape == (len(WORDS), 3)
    assert vectors.dimension == 3
    np.testing.assert_array_equal(vectors.matrix[0], 0.0)
    np.testing.assert_allclose(vectors.matrix[4], [0.1, 0.2, 0.3])
    np.testing.assert_allclose(vectors.matrix[5], [1.0, -1.0, 0.5])
    np.testing.assert_allclose(vectors.matrix[6], [2.5, 0.0, -0.25])


def test_reads_glove_text(tmp_path):
    vectors = load_word_vectors(write(tmp_path, GLOVE), WORDS)
    check_glove_rows(vectors)
    assert (vectors.found, vectors.total) == (4, 5)
    assert vectors.missing == ["square"]


def test_reads_word2vec_text_with_header(tmp_path):
    vectors = load_word_vectors(write(tmp_path, "5 3\n" + GLOVE), WORDS)
    check_glove_rows(vectors)
    assert vectors.found == 4


def test_reads_gzip(tmp_path):
    path = tmp_path / "vectors.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as file:
        file.write("5 3\n" + GLOVE)
    check_glove_rows(load_word_vectors(path, WORDS))


def test_reads_utf8_words_and_words_with_spaces(tmp_path):
    text = "\ufeffcafé 1 2\r\nat name@x.com 3 4\r\nnaïve\t5  6\r\n\r\n"
    vectors = load_word_vectors(write(tmp_path, text), ["<pad>", "café", "at name@x.com", "naïve"])
    np.testing.assert_allclose(vectors.matrix[1:], [[1, 2], [3, 4], [5, 6]])


def test_exact_match_first_then_lower_case(tmp_path):
    text = "The 1 1\nthe 2 2\nApple 3 3\napple 4 4\nParis 5 5\n"
    words = ["<pad>", "The", "APPLE", "paris"]
    vectors = load_word_vectors(write(tmp_path, text), words)
    # "The" exactly; "APPLE" and "paris" through lower case, first file line wins.
    np.testing.assert_allclose(vectors.matrix[1:], [[1, 1], [3, 3], [5, 5]])
    assert vectors.found == 3


def test_padding_is_zero_and_missing_rows_are_small_seeded_noise(tmp_path):
    path = write(tmp_path, GLOVE)
    vectors = load_word_vectors(path, WORDS, seed=3)
    np.testing.assert_array_equal(vectors.matrix[0], 0.0)
    random_rows = vectors.matrix[[1, 2, 3, 8]]  # <unk>, <start>, <end>, square
    assert np.all(random_rows != 0.0)
    assert np.abs(random_rows).max() < 1.0
    np.testing.assert_array_equal(load_word_vectors(path, WORDS, seed=3).matrix, vectors.matrix)
    assert not np.allclose(load_word_vectors(path, WORDS, seed=4).matrix[8], random_rows[-1])


def test_coverage_report(tmp_path):
    vectors = load_word_vectors(write(tmp_path, GLOVE, "glove.tiny.txt"), WORDS)
    assert vectors.coverage_report() == (
        "word vectors: 4 of 5 vocabulary words found in glove.tiny.txt (80.0%); missing e.g. square"
    )


def test_only_vocabulary_rows_are_kept_and_missing_examples_are_few(tmp_path):
    text = "".join(f"word{index} {index} {-index}\n" for index in range(100))
    words = [
        "<pad>",
        *(f"word{index}" for index in range(0, 100, 2)),
        *(f"x{i}" for i in range(30)),
    ]
    vectors = load_word_vectors(write(tmp_path, text), words)
    assert (vectors.found, vectors.total) == (50, 80)
    assert vectors.missing == [f"x{i}" for i in range(10)]
    np.testing.assert_allclose(vectors.matrix[50], [98, -98])


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="nowhere.txt.*does not exist"):
        load_word_vectors(tmp_path / "nowhere.txt", WORDS)


def test_empty_file(tmp_path):
    with pytest.raises(ValueError, match="empty.txt.*empty"):
        load_word_vectors(write(tmp_path, "\n\n", "empty.txt"), WORDS)


def test_header_only_file_is_empty(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        load_word_vectors(write(tmp_path, "0 3\n"), WORDS)


@pytest.mark.parametrize(
    "bad_line",
    ["square 1 2", "square 1 2 3 4", "unused 1 2", "x"],
    ids=["short", "long", "not-in-vocabulary", "no-values"],
)
def test_vector_length_mismatch_names_file_and_line(tmp_path, bad_line):
    path = write(tmp_path, GLOVE + bad_line + "\n")
    with pytest.raises(ValueError, match=r"vectors\.txt:6: .*values.*3"):
        load_word_vectors(path, WORDS)


def test_header_dimension_mismatch(tmp_path):
    with pytest.raises(ValueError, match=r"vectors\.txt:2: .*3 values.*have 4"):
        load_word_vectors(write(tmp_path, "5 4\n" + GLOVE), WORDS)


@pytest.mark.parametrize("value", ["abc", "nan", "inf"])
def test_non_numeric_value_names_file_and_line(tmp_path, value):
    path = write(tmp_path, GLOVE.replace("red 1.0 -1.0", f"red 1.0 {value}"))
    with pytest.raises(ValueError, match=r"vectors\.txt:2: .*'red'.*not a finite number"):
        load_word_vectors(path, WORDS)


def test_invalid_utf8_names_line(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_bytes(GLOVE.encode() + b"\xff\xfe 1 2 3\n")
    with pytest.raises(ValueError, match=r"vectors\.txt:6: .*UTF-8"):
        load_word_vectors(path, WORDS)


def test_no_overlap(tmp_path):
    with pytest.raises(ValueError, match="do not overlap"):
        load_word_vectors(write(tmp_path, "zebra 1 2\n"), ["<pad>", "red", "circle"])


def test_words_with_only_reserved_tokens(tmp_path):
    with pytest.raises(ValueError, match="reserved tokens"):
        load_word_vectors(write(tmp_path, GLOVE), list(RESERVED_TOKENS))


def test_rows_follow_word_vocabulary_ids(tmp_path):
    from datasets.text import WordVocabulary

    vocabulary = WordVocabulary(["circle", "red", "square"])
    vectors = load_word_vectors(write(tmp_path, GLOVE), vocabulary.tokens)
    assert vectors.matrix.shape == (vocabulary.size, 3)
    ids = vocabulary.encode(tf.constant(["red circle"]), 2).numpy()[0]
    np.testing.assert_allclose(vectors.matrix[ids], [[1.0, -1.0, 0.5], [2.5, 0.0, -0.25]])
