"""train.py's validation pass: bad rows and the readers' problems reported by file and
reason, skipped or fatal."""

import numpy as np
import pytest
from PIL import Image

from datasets.checked_splits import checked_split
from datasets.examples import CaptionExamples
from datasets.image_sources import RecordImages
from datasets.labelled_pairs import LabelledPairs
from datasets.validation import EMPTY_TEXT, UNKNOWN_ID, Problem
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


def skip_report(examples):
    """checked_split under "skip": (the kept examples, the printed report)."""
    printed = []
    kept = checked_split(examples, "skip", printed.append)
    return kept, "\n".join(printed)


def reader_problem(where, reason=EMPTY_TEXT, detail="caption is ''"):
    return Problem(None, where, reason, detail)


@pytest.fixture
def captions_with_reader_problems(tmp_path):
    paths = []
    for index in range(4):
        path = tmp_path / f"{index}.png"
        Image.fromarray(np.full((8, 8, 3), index * 40, np.uint8)).save(path)
        paths.append(str(path))
    problems = (reader_problem("data.csv row 2"), reader_problem("data.csv row 5", UNKNOWN_ID))
    return CaptionExamples(paths, [["a"], ["b"], ["c"], ["d"]], "data.csv", problems=problems)


def test_reader_problems_are_reported_with_the_rows_and_not_carried_on(
    captions_with_reader_problems,
):
    kept, report = skip_report(captions_with_reader_problems)
    assert kept.image_paths == captions_with_reader_problems.image_paths
    assert kept.problems == ()
    assert kept.source == "data.csv (2 bad metadata entries left out)"
    assert report.startswith(
        "data.csv: 0 of 4 rows have problems, and the reader left out 2 bad entries of the "
        "metadata (2 problems in all):"
    )
    assert f"  {EMPTY_TEXT}: 1 (e.g. data.csv row 2)" in report
    assert f"  {UNKNOWN_ID}: 1 (e.g. data.csv row 5)" in report
    assert checked_split(kept, "error") is kept


def test_error_names_the_first_reader_problem_by_file_and_position(
    captions_with_reader_problems,
):
    with pytest.raises(ValueError) as error:
        checked_split(captions_with_reader_problems, "error")
    assert str(error.value).startswith(
        f"data.csv: data.csv row 2: {EMPTY_TEXT}: caption is '' (2 problems in all;"
    )


def test_a_held_out_split_leaves_the_reader_problems_with_the_train_part(
    captions_with_reader_problems,
):
    train, held_out = captions_with_reader_problems.split(0.25, seed=0)
    assert train.problems == captions_with_reader_problems.problems
    assert held_out.problems == ()
    pairs = LabelledPairs(["/a", "/b"], ["x", "y"], ["1", "2"], "s", problems=train.problems)
    rest, held = pairs.split(0.5, seed=0)
    assert (rest.problems, held.problems) == (train.problems, ())


def test_empty_labels_are_reported_by_row():
    streamed = LabelledPairs(
        ["k1", "k2", "k3"], ["a", "b", "c"], ["x", " ", "y"], "s", images=RecordImages(("s",))
    )
    kept, report = skip_report(streamed)
    assert kept.labels == ["x", "y"]
    assert f"  {EMPTY_TEXT}: 1 (e.g. row 1)" in report
    with pytest.raises(ValueError, match=r"^s: row 1: empty text: label is ' '"):
        checked_split(streamed, "error")


def test_no_image_file_at_all_is_told_apart_from_reader_problems(tmp_path):
    examples = CaptionExamples(
        [str(tmp_path / "gone.png")], [["a"]], "data.csv", problems=(reader_problem("x"),)
    )
    with pytest.raises(ValueError, match=r"none of its 1 image files exists \(first: .*gone.png"):
        checked_split(examples, "skip")
