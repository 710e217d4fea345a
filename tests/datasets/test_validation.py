"""The metadata pass before training: every bad row found, counted, and a policy applied."""

import math

import pytest

from datasets.image_header import TRUNCATED, UNSUPPORTED
from datasets.validation import (
    DUPLICATE_ID,
    EMPTY_TEXT,
    MISSING_FIELD,
    MISSING_FILE,
    NOT_UTF8,
    OVER_PIXEL_CAP,
    Problem,
    require_usable_rows,
    text_problem,
    validate_examples,
)
from tests.datasets.test_image_header import FORMATS, bomb_png, encoded_image


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    """Good images of every format, then one row of each kind of problem."""
    tmp_path = tmp_path_factory.mktemp("rows")
    paths, texts, ids = [], [], []

    def add(name, data, text="a red square", image_id=None):
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        paths.append(str(path))
        texts.append(text)
        ids.append(image_id if image_id is not None else name)

    for image_format in FORMATS:
        add(f"good.{image_format}", encoded_image(image_format))
    add("good_bytes_caption.png", encoded_image("png"), text="un carré rouge".encode())
    add("captions.png", encoded_image("png"), text=["one", "two"])
    jpeg = encoded_image("jpeg", size=(200, 100))
    expected = {
        len(paths): {MISSING_FILE},
        len(paths) + 1: {UNSUPPORTED},
        len(paths) + 2: {TRUNCATED},
        len(paths) + 3: {OVER_PIXEL_CAP},
        len(paths) + 4: {EMPTY_TEXT},
        len(paths) + 5: {NOT_UTF8},
        len(paths) + 6: {MISSING_FIELD},
        len(paths) + 7: {EMPTY_TEXT},
        len(paths) + 8: {MISSING_FILE, EMPTY_TEXT},
    }
    add("missing.jpg", None)
    add("notes.jpg", b"this is a text file, not a photo\n")
    add("cut.jpg", jpeg[: len(jpeg) // 2])
    add("bomb.png", bomb_png())
    add("blank_caption.png", encoded_image("png"), text="  \n")
    add("latin1_caption.png", encoded_image("png"), text="caf\xe9 au lait".encode("latin-1"))
    add("no_caption.png", encoded_image("png"), text=None)
    add("one_empty_caption.png", encoded_image("png"), text=["fine", ""])
    add("missing_and_blank.png", None, text="")
    return paths, texts, ids, expected


def reasons_by_row(report):
    found = {}
    for problem in report.problems:
        found.setdefault(problem.index, set()).add(problem.reason)
    return found


def test_every_problem_is_found_with_its_file_or_row(rows):
    paths, texts, ids, expected = rows
    report = validate_examples(paths, texts, ids, source="train.jsonl", num_threads=4)
    assert reasons_by_row(report) == expected
    assert report.bad_indices == sorted(expected)
    assert report.kept_indices() == [index for index in range(len(paths)) if index not in expected]
    where = {(problem.index, problem.reason): problem.where for problem in report.problems}
    missing = min(expected)
    assert where[missing, MISSING_FILE] == paths[missing]
    assert where[missing + 4, EMPTY_TEXT] == f"row {missing + 4}"
    details = {problem.reason: problem.detail for problem in report.problems}
    assert "20000x20000 pixels" in details[OVER_PIXEL_CAP]
    assert "text ('this is a text file" in details[UNSUPPORTED]
    assert "FF D9" in details[TRUNCATED]
    assert "invalid UTF-8 at byte 3 (e9" in details[NOT_UTF8]


def test_the_summary_counts_by_reason_and_names_the_first_files(rows):
    paths, texts, ids, expected = rows
    summary = validate_examples(paths, texts, ids, source="train.jsonl").summary()
    assert summary.startswith(f"train.jsonl: {len(expected)} of {len(paths)} rows have problems")
    assert f"  {MISSING_FILE}: 2 (e.g. {paths[min(expected)]}, " in summary
    assert f"  {EMPTY_TEXT}: 3 (e.g. row " in summary
    assert f"  {OVER_PIXEL_CAP}: 1 (e.g. {paths[min(expected) + 3]})" in summary


def test_error_policy_names_the_first_bad_file_and_skip_keeps_the_rest(rows):
    paths, texts, ids, expected = rows
    report = validate_examples(paths, texts, ids, source="train.jsonl")
    first = min(expected)
    with pytest.raises(
        ValueError, match=rf"train.jsonl: row {first}: .*missing\.jpg: missing file"
    ):
        report.enforce("error")
    printed = []
    kept = report.enforce("skip", print_fn=printed.append)
    assert kept == report.kept_indices() and len(kept) == len(paths) - len(expected)
    assert printed == [report.summary()]
    with pytest.raises(ValueError, match="on_bad_example='ignore'"):
        report.enforce("ignore")


def test_clean_rows_pass_every_policy(rows):
    paths, texts, ids, expected = rows
    good = [index for index in range(len(paths)) if index not in expected]
    report = validate_examples([paths[i] for i in good], [texts[i] for i in good])
    assert report.problems == [] and "all 8 rows passed" in report.summary()
    assert report.enforce("error") == report.enforce("skip") == list(range(len(good)))


def test_skip_with_no_row_left_is_an_error(tmp_path):
    report = validate_examples([str(tmp_path / "gone.png")], ["caption"])
    with pytest.raises(ValueError, match="every one of the 1 rows has a problem"):
        report.enforce("skip", print_fn=lambda message: None)


def test_duplicate_ids_with_different_files_flag_every_row_of_that_id(tmp_path):
    paths = []
    for name in ("a.png", "b.png", "c.png"):
        (tmp_path / name).write_bytes(encoded_image("png"))
        paths.append(str(tmp_path / name))
    rows = [paths[0], paths[1], paths[0], paths[2], paths[2]]
    ids = [7, 7, 7, 8, 8]  # id 7 names a.png and b.png; id 8 names c.png twice (captions)
    report = validate_examples(rows, ["x"] * 5, ids)
    assert reasons_by_row(report) == {0: {DUPLICATE_ID}, 1: {DUPLICATE_ID}, 2: {DUPLICATE_ID}}
    assert "id 7 names 2 different files" in report.problems[0].detail


def test_missing_fields_none_and_nan(tmp_path):
    (tmp_path / "a.png").write_bytes(encoded_image("png"))
    good = str(tmp_path / "a.png")
    report = validate_examples(
        [None, good, good, ""], ["x", math.nan, "y", "z"], ["1", "2", None, "4"]
    )
    assert reasons_by_row(report) == {i: {MISSING_FIELD} for i in range(4)}
    assert [problem.detail for problem in report.problems] == [
        "image is None",
        "text is nan",
        "id is None",
        "image is ''",
    ]


def test_files_are_checked_across_thread_chunks(tmp_path):
    good = tmp_path / "good.png"
    good.write_bytes(encoded_image("png"))
    paths = [str(good)] * 5 + [str(tmp_path / f"{index}.png") for index in range(600)]
    for index in range(600):
        if index not in (3, 290, 599):
            (tmp_path / f"{index}.png").write_bytes(encoded_image("gif", size=(4, 4)))
    for threads in (1, 8):
        report = validate_examples(paths, ["x"] * len(paths), num_threads=threads)
        assert report.bad_indices == [5 + 3, 5 + 290, 5 + 599]


def test_misaligned_columns_are_refused():
    with pytest.raises(ValueError, match="meta.csv: 2 image paths but 1 texts"):
        validate_examples(["a", "b"], ["x"], source="meta.csv")


def test_labels_are_checked_when_given(tmp_path):
    (tmp_path / "a.png").write_bytes(encoded_image("png"))
    good = str(tmp_path / "a.png")
    report = validate_examples([good] * 3, ["x", "y", "z"], labels=["cat", None, " "])
    assert [(p.index, p.reason, p.detail) for p in report.problems] == [
        (1, MISSING_FIELD, "label is None"),
        (2, EMPTY_TEXT, "label is ' '"),
    ]
    assert validate_examples([good], ["x"]).problems == []


def test_reader_problems_come_first_and_make_no_row_bad(tmp_path):
    (tmp_path / "a.png").write_bytes(encoded_image("png"))
    left_out = Problem(None, "data.csv row 4", EMPTY_TEXT, "caption is ''")
    report = validate_examples(
        [str(tmp_path / "a.png"), str(tmp_path / "gone.png")], ["x", "y"],
        reader_problems=[left_out], source="data.csv",
    )  # fmt: skip
    assert report.problems[0] == left_out and report.problems[1].reason == MISSING_FILE
    assert report.bad_indices == [1] and report.kept_indices() == [0]
    assert report.summary().startswith(
        "data.csv: 1 of 2 rows have problems, and the reader left out 1 bad entries of the "
        "metadata (2 problems in all):"
    )
    with pytest.raises(ValueError, match=r"^data.csv: data.csv row 4: empty text: caption is ''"):
        report.enforce("error")


def test_undecodable_bytes_and_file_names_are_not_utf8(tmp_path):
    read = b"caf\xe9".decode("utf-8", "surrogateescape")
    assert text_problem(read, "caption") == (
        NOT_UTF8,
        "caption: invalid UTF-8 byte e9 at character 3",
    )
    (tmp_path / "a.png").write_bytes(encoded_image("png"))
    named = str(tmp_path / read)
    (tmp_path / "a.png").rename(named)
    report = validate_examples([named], ["x"])
    assert [(p.where, p.reason) for p in report.problems] == [(named, NOT_UTF8)]


def test_a_metadata_file_with_no_usable_row_is_refused():
    require_usable_rows("data.csv", 1, [Problem(None, "data.csv row 2", EMPTY_TEXT, "x")])
    with pytest.raises(ValueError, match=r"^data.csv: no rows\.$"):
        require_usable_rows("data.csv", 0, [])
    problems = [Problem(None, f"data.csv row {n}", EMPTY_TEXT, "caption is ''") for n in (1, 2)]
    with pytest.raises(
        ValueError,
        match=r"^data.csv: no usable row: 2 problems, the first data.csv row 1: empty text: ",
    ):
        require_usable_rows("data.csv", 0, problems)


def test_an_image_over_the_serving_byte_cap_is_reported(tmp_path, monkeypatch):
    from datasets import validation

    path = tmp_path / "large.png"
    path.write_bytes(encoded_image("png"))
    monkeypatch.setattr(validation, "MAX_IMAGE_BYTES", path.stat().st_size - 1)
    (problem,) = validate_examples([str(path)], ["a caption"]).problems
    assert problem.reason == validation.OVER_BYTE_CAP
    assert f"{path.stat().st_size} bytes, over the cap of MAX_IMAGE_BYTES=" in problem.detail
