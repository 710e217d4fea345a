"""Readers for CSV and JSONL metadata files (one row per example)."""

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from datasets.examples import CaptionExamples
from datasets.labelled_pairs import LabelledPairs


def read_rows(
    path: str | Path, required_columns: Sequence[str], image_dir: str | Path | None = None
) -> list[dict]:
    """Reads a .csv (with a header) or .jsonl file into dicts, checking required columns.

    The `image` column is resolved relative to `image_dir`, else the file's folder.

    Raises:
        ValueError: naming the file, the row number and the missing or empty column.
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            if path.suffix.lower() == ".csv":
                rows = list(csv.DictReader(stream))
            elif path.suffix.lower() == ".jsonl":
                rows = [json.loads(line) for line in stream if line.strip()]
            else:
                raise ValueError(f"{path}: expected a .csv or .jsonl file.")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read rows: {error}") from error
    if not rows:
        raise ValueError(f"{path}: no rows.")
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise ValueError(f"{path}: row {number} is not an object: {str(row)[:80]!r}")
        for column in required_columns:
            value = row.get(column)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise ValueError(f"{path}: row {number} has no value in column {column!r}.")
        if "image" in row:
            row["image"] = str((Path(image_dir or path.parent) / row["image"]).resolve())
    return rows


def read_caption_table(path: str | Path, image_dir: str | Path | None = None) -> CaptionExamples:
    """Reads `image`,`caption` rows; several rows of one image become its captions."""
    captions: dict[str, list[str]] = {}
    for row in read_rows(path, ("image", "caption"), image_dir):
        captions.setdefault(row["image"], []).append(str(row["caption"]).strip())
    return CaptionExamples(list(captions), list(captions.values()), str(path))


def read_labelled_table(
    path: str | Path, text_column: str, label_column: str, image_dir: str | Path | None = None
) -> LabelledPairs:
    """Reads `image`,`<text_column>`,`<label_column>` rows, one example per row.

    Labels are read as strings (a CSV `1` and a JSONL `1` are the same class).
    """
    rows = read_rows(path, ("image", text_column, label_column), image_dir)
    return LabelledPairs(
        [row["image"] for row in rows],
        [str(row[text_column]).strip() for row in rows],
        [str(row[label_column]).strip() for row in rows],
        str(path),
    )
