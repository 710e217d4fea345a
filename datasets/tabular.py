"""Readers for CSV and JSONL metadata files (one row per example).

A row that cannot be used (not a JSON object, a required column missing or empty,
a text that is not UTF-8) is left out and recorded as a Problem naming the file and
the row (`data.csv row 7`, counting data rows from 1) or line (`data.jsonl line 7`);
the validation pass reports it under --on-bad-example. A file that cannot be read,
has no rows or no usable row, or whose CSV header lacks a required column raises.
"""

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from datasets.examples import CaptionCollector, CaptionExamples
from datasets.labelled_pairs import LabelledPairs
from datasets.validation import (
    MALFORMED_ROW,
    MISSING_FIELD,
    Problem,
    require_usable_rows,
    text_problem,
)


def read_records(
    path: str | Path, required_columns: Sequence[str]
) -> tuple[list[tuple[str, dict]], list[Problem]]:
    """Reads a .csv (with a header) or .jsonl file into (where, row) pairs.

    Invalid UTF-8 bytes are kept (as surrogates) for the column checks to report.

    Returns:
        Every row that is an object, with its position (`data.csv row 3`), and a
        Problem for each JSONL line that is not JSON or not an object.

    Raises:
        ValueError: naming the file when it cannot be read, is neither .csv nor
            .jsonl, has no rows, or its CSV header lacks one of `required_columns`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise ValueError(f"{path}: expected a .csv or .jsonl file.")
    records, problems = [], []
    try:
        with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as stream:
            if suffix == ".csv":
                reader = csv.DictReader(stream)
                records = [(f"{path} row {n}", row) for n, row in enumerate(reader, start=1)]
            else:
                for number, line in enumerate(stream, start=1):
                    if line.strip():
                        _json_record(f"{path} line {number}", line, records, problems)
    except (OSError, csv.Error) as error:
        raise ValueError(f"{path}: cannot read rows: {error}") from error
    if not records and not problems:
        raise ValueError(f"{path}: no rows.")
    if suffix == ".csv":
        absent = [column for column in required_columns if column not in reader.fieldnames]
        if absent:
            raise ValueError(
                f"{path}: the header has no column {absent[0]!r} (its columns: "
                f"{', '.join(reader.fieldnames)})."
            )
    return records, problems


def _json_record(where: str, line: str, records: list, problems: list) -> None:
    """Appends the object on `line` to `records`, or what is wrong with it to `problems`."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        detail = f"not JSON: {error.msg} at character {error.pos}"
        problems.append(Problem(None, where, MALFORMED_ROW, detail))
        return
    if isinstance(row, dict):
        records.append((where, row))
    else:
        detail = f"not an object: {line.strip()[:80]!r}"
        problems.append(Problem(None, where, MALFORMED_ROW, detail))


def column_problem(row: dict, columns: Sequence[str]) -> tuple[str, str] | None:
    """(reason, detail) of the first of `columns` that is missing, empty or not UTF-8.

    Values are read as strings (a CSV `1` and a JSONL `1` are the same text).
    """
    for column in columns:
        value = row.get(column)
        if value is None:
            return MISSING_FIELD, f"no value in column {column!r}"
        problem = text_problem(str(value), f"column {column!r}")
        if problem:
            return problem
    return None


def _image_path(path: Path, row: dict, image_dir: str | Path | None) -> str:
    return str((Path(image_dir or path.parent) / str(row["image"])).resolve())


def read_rows(
    path: str | Path, required_columns: Sequence[str], image_dir: str | Path | None = None
) -> tuple[list[dict], list[Problem]]:
    """Reads the rows of a .csv or .jsonl file that have every required column.

    The `image` column is resolved relative to `image_dir`, else the file's folder.

    Returns:
        The usable rows, and a Problem (file and row or line) for each row left out.

    Raises:
        ValueError: naming the file when it cannot be read (see `read_records`) or
            no row is usable.
    """
    path = Path(path)
    records, problems = read_records(path, required_columns)
    rows = []
    for where, row in records:
        problem = column_problem(row, required_columns)
        if problem:
            problems.append(Problem(None, where, *problem))
            continue
        if "image" in row:
            row["image"] = _image_path(path, row, image_dir)
        rows.append(row)
    require_usable_rows(str(path), len(rows), problems)
    return rows, problems


def read_caption_table(path: str | Path, image_dir: str | Path | None = None) -> CaptionExamples:
    """Reads `image`,`caption` rows; several rows of one image become its captions.

    A row with a bad caption leaves out only that caption; an image left with none
    is left out too; each is recorded in the examples' problems.
    """
    path = Path(path)
    records, problems = read_records(path, ("image", "caption"))
    collector = CaptionCollector()
    for problem in problems:
        collector.reject(problem)
    for where, row in records:
        problem = column_problem(row, ("image",))
        if problem:
            collector.reject(Problem(None, where, *problem))
            continue
        caption = row.get("caption")
        caption = None if caption is None else str(caption)
        collector.add(_image_path(path, row, image_dir), caption, where)
    return collector.examples(str(path))


def read_labelled_table(
    path: str | Path, text_column: str, label_column: str, image_dir: str | Path | None = None
) -> LabelledPairs:
    """Reads `image`,`<text_column>`,`<label_column>` rows, one example per row.

    Labels are read as strings (a CSV `1` and a JSONL `1` are the same class). A row
    with a column missing or empty is left out and recorded in the examples' problems.
    """
    rows, problems = read_rows(path, ("image", text_column, label_column), image_dir)
    return LabelledPairs(
        [row["image"] for row in rows],
        [str(row[text_column]).strip() for row in rows],
        [str(row[label_column]).strip() for row in rows],
        str(path),
        problems=tuple(problems),
    )
