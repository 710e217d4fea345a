"""train.py's validation pass: bad rows reported by file and reason, skipped or fatal."""

import numpy as np
import pytest
from PIL import Image

from datasets.checked_splits import checked_split
from datasets.image_sources import RecordImages
from datasets.labelled_pairs import LabelledPairs
from tests.datasets.test_image_header import bomb_png


@pytest.fixture
def split_with_bad_rows(tmp_path):
    paths = []
    for index in range(4):
        path = tmp_path / f"good_{index}.jpg"
        Image.fromarray(np.full((8, 8, 3), index * 40, np.uint8)).save(path)
        paths.append(str(path))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes((tmp_path / "good_0.jpg").read_bytes()[:-40])
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png())
    image_paths = [paths[0], str(truncated), paths[1], str(bomb), paths[2], paths[3]]
    texts = ["a", "b", "c", "d", "   ", "f"]
    return LabelledPairs(image_paths, texts, ["x"] * 6, "rows.jsonl")


def test_skip_reports_every_bad_row_and_keeps_the_rest(split_with_bad_rows):
    printed = []
    kept = checked_split(split_with_bad_rows, "skip", printed.append)
    assert kept.texts == ["a", "c", "f"]
    assert kept.source == "rows.jsonl (3 bad rows skipped)"
    report = "\n".join(printed)
    assert "truncated.jpg" in report and "bomb.png" in report and "empty text" in report


def test_error_names_the_first_bad_file(split_with_bad_rows):
    with pytest.raises(ValueError, match=r"rows.jsonl: row 1: .*truncated.jpg: truncated"):
        checked_split(split_with_bad_rows, "error")


def test_a_clean_split_is_returned_as_it_is(split_with_bad_rows):
    clean = split_with_bad_rows.subset([0, 2, 5], "")
    assert checked_split(clean, "error") is clean


def test_streamed_images_are_not_looked_for_as_files():
    streamed = LabelledPairs(
        ["key_1", "key_2"], ["a", ""], ["x", "y"], "shards", images=RecordImages(("s",))
    )
    kept = checked_split(streamed, "skip", lambda message: None)
    assert kept.image_paths == ["key_1"]
