"""A pass over a split's metadata before training: every bad row, with its reason.

Reads only each image's header and tail (`datasets.image_header`), in threads, so
100k files take seconds, and checks the texts and ids in memory. The report lists
every problem; `DataReport.enforce` turns it into a policy: stop at the first bad
example, or skip the bad ones and say which.

The readers report here too: what they find wrong in a row of the metadata (an empty
caption, a missing column, an unknown id) they leave out of the examples and record
as a `Problem` without a row index, naming the file and the position in it
("captions.json annotations[3]", "train.csv row 7"); the examples carry these to
`validate_examples`, and one report lists both.
"""

import itertools
import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

from datasets.image_header import (
    DEFAULT_MAX_PIXELS,
    MAX_IMAGE_BYTES,
    ImageFileError,
    read_image_header,
)

MISSING_FIELD = "missing field"
MISSING_FILE = "missing file"
UNREADABLE_FILE = "unreadable file"
OVER_PIXEL_CAP = "over the pixel cap"
OVER_BYTE_CAP = "over the byte cap"
EMPTY_TEXT = "empty text"
NOT_UTF8 = "text is not UTF-8"
DUPLICATE_ID = "duplicate id"
UNKNOWN_ID = "unknown id"
CONFLICTING_ID = "conflicting ids"
MALFORMED_ROW = "malformed row"
POLICIES = ("error", "skip")
_CHUNK = 256  # files per thread task: one future per file costs more than its check


class Problem(NamedTuple):
    """One thing wrong with one row.

    Attributes:
        index: the row; None for what a reader left out of the examples (a caption,
            a metadata row, an image with no caption left).
        where: the image file, or "row N" for a problem with the row's text or id;
            for a reader's problem, the metadata file and position ("data.csv row 7").
        reason: a fixed phrase to count by (MISSING_FILE, "truncated image", ...).
        detail: what exactly, in words.
    """

    index: int | None
    where: str
    reason: str
    detail: str


@dataclass(frozen=True)
class DataReport:
    """Every problem found in a split's rows.

    Attributes:
        problems: the reader's problems first, then the rows' in row order.
        rows: how many rows were checked.
        source: what was checked, for messages.
    """

    problems: list[Problem]
    rows: int
    source: str

    @property
    def bad_indices(self) -> list[int]:
        return sorted({p.index for p in self.problems if p.index is not None})

    def kept_indices(self) -> list[int]:
        bad = set(self.bad_indices)
        return [index for index in range(self.rows) if index not in bad]

    def summary(self, examples_per_reason: int = 3) -> str:
        """Counts by reason, each with the first few files or rows it names."""
        if not self.problems:
            return f"{self.source}: all {self.rows} rows passed the checks."
        header = f"{self.source}: {len(self.bad_indices)} of {self.rows} rows have problems"
        left_out = sum(problem.index is None for problem in self.problems)
        if left_out:
            header += f", and the reader left out {left_out} bad entries of the metadata"
        lines = [f"{header} ({len(self.problems)} problems in all):"]
        counts = Counter(problem.reason for problem in self.problems)
        for reason, count in counts.most_common():
            named = list(dict.fromkeys(p.where for p in self.problems if p.reason == reason))
            shown = ", ".join(named[:examples_per_reason])
            more = (
                f" and {len(named) - examples_per_reason} more"
                if len(named) > examples_per_reason
                else ""
            )
            lines.append(f"  {reason}: {count} (e.g. {shown}{more})")
        return "\n".join(lines)

    def enforce(self, on_bad_example: str, print_fn: Callable[[str], None] = print) -> list[int]:
        """Applies a policy to the bad rows.

        Args:
            on_bad_example: "error" raises at the first bad row; "skip" prints the
                summary and keeps the good rows.
            print_fn: where "skip" prints the summary.

        Returns:
            The indices of the rows to keep, in order (all of them when nothing is wrong).

        Raises:
            ValueError: under "error", naming the first bad file, row or metadata entry
                and its reason (and how many more there are); under "skip", when no row
                is left; for a policy other than "error" or "skip".
        """
        if on_bad_example not in POLICIES:
            raise ValueError(
                f"datasets/validation.py: on_bad_example={on_bad_example!r}; expected one of "
                f"{POLICIES}."
            )
        if not self.problems:
            return list(range(self.rows))
        if on_bad_example == "error":
            first = self.problems[0]
            position = first.where  # a reader's problem, or "row N" itself
            if first.index is not None and first.where != f"row {first.index}":
                position = f"row {first.index}: {first.where}"
            raise ValueError(
                f"{self.source}: {position}: {first.reason}: {first.detail} "
                f"({len(self.problems)} problems in all; skip them with on_bad_example='skip')"
            )
        print_fn(self.summary())
        kept = self.kept_indices()
        if not kept:
            raise ValueError(f"{self.source}: every one of the {self.rows} rows has a problem.")
        return kept


def validate_examples(
    image_paths: Sequence[str | None],
    texts: Sequence,
    ids: Sequence | None = None,
    *,
    labels: Sequence | None = None,
    reader_problems: Sequence[Problem] = (),
    max_pixels: int = DEFAULT_MAX_PIXELS,
    source: str = "examples",
    num_threads: int = 16,
    check_files: bool = True,
) -> DataReport:
    """Checks every row's image file, text, label and id, and reports all problems.

    Args:
        image_paths: one image file per row (None where the field is missing).
        texts: one text per row: str, UTF-8 bytes, or a list of them (the captions
            of an image); None where the field is missing.
        ids: optional image id per row; one id naming two different files is a problem
            on every row of that id.
        labels: optional label per row (classification, VQA), each a non-empty string.
        reader_problems: what the reader found wrong and left out of the rows (they
            have no row index), reported first.
        max_pixels: images whose header gives more pixels are reported.
        source: what is checked (the metadata file), for messages.
        num_threads: file checks run in this many threads.
        check_files: False when the images are not files (TFRecord shards, TFDS):
            only the texts and ids are checked.

    Returns:
        The DataReport.

    Raises:
        ValueError: texts or ids not aligned with image_paths.

    Example:
        >>> report = validate_examples(paths, captions, source="train.jsonl")
        >>> keep = report.enforce("skip")
    """
    for name, values in (("texts", texts), ("ids", ids), ("labels", labels)):
        if values is not None and len(values) != len(image_paths):
            raise ValueError(f"{source}: {len(image_paths)} image paths but {len(values)} {name}.")
    unique_paths = list(dict.fromkeys(path for path in image_paths if _is_text(path)))
    if not check_files:
        unique_paths = []
    chunks = [unique_paths[start : start + _CHUNK] for start in range(0, len(unique_paths), _CHUNK)]
    with ThreadPoolExecutor(max(1, num_threads)) as pool:
        found = pool.map(lambda chunk: [_file_problem(path, max_pixels) for path in chunk], chunks)
        file_problems = dict(zip(unique_paths, itertools.chain.from_iterable(found), strict=True))
    problems = []
    for index, path in enumerate(image_paths):
        if not _is_text(path):
            problems.append(Problem(index, f"row {index}", MISSING_FIELD, f"image is {path!r}"))
        elif file_problems.get(path):
            problems.append(Problem(index, path, *file_problems[path]))
        text_found = text_problem(texts[index])
        if text_found:
            problems.append(Problem(index, f"row {index}", *text_found))
        label_found = None if labels is None else text_problem(labels[index], "label")
        if label_found:
            problems.append(Problem(index, f"row {index}", *label_found))
    if ids is not None:
        problems += _id_problems(image_paths, ids)
    problems.sort(key=lambda problem: problem.index)
    return DataReport([*reader_problems, *problems], len(image_paths), source)


def require_usable_rows(source: str, kept: int, problems: Sequence[Problem]) -> None:
    """Refuses a metadata file that leaves no usable row: a problem of the whole file.

    Args:
        source: the metadata file, for the message.
        kept: how many rows (or images) the reader kept.
        problems: what the reader left out.

    Raises:
        ValueError: `kept` is 0, naming the first problem and how many there are.
    """
    if kept:
        return
    if not problems:
        raise ValueError(f"{source}: no rows.")
    first = problems[0]
    raise ValueError(
        f"{source}: no usable row: {len(problems)} problems, the first {first.where}: "
        f"{first.reason}: {first.detail}"
    )


def _is_text(value) -> bool:
    return isinstance(value, str) and value != ""


def _file_problem(path: str, max_pixels: int) -> tuple[str, str] | None:
    name_problem = text_problem(path, "file name")
    if name_problem:
        return name_problem
    try:
        header = read_image_header(path, check_complete=True)
    except FileNotFoundError:
        return MISSING_FILE, "no such file"
    except IsADirectoryError:
        return MISSING_FILE, "a directory, not a file"
    except ImageFileError as error:
        return error.reason, error.detail
    except OSError as error:
        return UNREADABLE_FILE, error.strerror or str(error)
    size = os.path.getsize(path)
    if size > MAX_IMAGE_BYTES:  # an export would refuse it: keep training and serving alike
        return OVER_BYTE_CAP, f"{size} bytes, over the cap of MAX_IMAGE_BYTES={MAX_IMAGE_BYTES}"
    if header.pixels > max_pixels:
        return OVER_PIXEL_CAP, (
            f"{header.format} of {header.width}x{header.height} pixels, over the cap of "
            f"max_pixels={max_pixels}"
        )
    return None


def text_problem(text, field: str = "text") -> tuple[str, str] | None:
    """What is wrong with a text, or None when it is a non-empty UTF-8 string.

    Args:
        text: str, UTF-8 bytes, or a list of them (the captions of an image); a str
            read with errors="surrogateescape" keeps its invalid bytes as surrogates.
        field: what the text is, for the detail ("caption", "column 'label'").

    Returns:
        (reason, detail): MISSING_FIELD, NOT_UTF8 or EMPTY_TEXT and what exactly.
    """
    if isinstance(text, list | tuple):
        if not text:
            return EMPTY_TEXT, "no captions"
        for number, one in enumerate(text):
            problem = text_problem(one, field)
            if problem:
                return problem[0], f"caption {number}: {problem[1]}"
        return None
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return MISSING_FIELD, f"{field} is {text!r}"
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            bad = text[error.start : error.start + 4].hex(" ")
            return NOT_UTF8, f"{field}: invalid UTF-8 at byte {error.start} ({bad})"
    elif isinstance(text, str):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            character = text[error.start]
            if "\udc80" <= character <= "\udcff":  # an undecodable byte, kept by surrogateescape
                return NOT_UTF8, (
                    f"{field}: invalid UTF-8 byte {ord(character) - 0xDC00:02x} at character "
                    f"{error.start}"
                )
            return NOT_UTF8, f"{field}: unencodable character at {error.start} ({character!r})"
    else:
        return MISSING_FIELD, f"{field} is {text!r} ({type(text).__name__}), not a string"
    if not text.strip():
        return EMPTY_TEXT, f"{field} is {text!r}"
    return None


def _id_problems(image_paths: Sequence, ids: Sequence) -> list[Problem]:
    problems = []
    rows_by_id = defaultdict(list)
    for index, image_id in enumerate(ids):
        if image_id is None or (isinstance(image_id, float) and math.isnan(image_id)):
            problems.append(Problem(index, f"row {index}", MISSING_FIELD, f"id is {image_id!r}"))
        else:
            rows_by_id[image_id].append(index)
    for image_id, rows in rows_by_id.items():
        files = list(dict.fromkeys(str(image_paths[index]) for index in rows))
        if len(files) > 1:
            detail = f"id {image_id!r} names {len(files)} different files: {', '.join(files[:3])}"
            problems += [
                Problem(index, str(image_paths[index]), DUPLICATE_ID, detail) for index in rows
            ]
    return problems
