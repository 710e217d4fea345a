"""The metrics report: an aligned table for terminals and READMEs, and a JSON file.

Example:

>>> print(format_metrics_table({"bleu_4": 0.25, "cider_d": 0.8}, {"bleu_4": 0.05}))
| metric  |  model | baseline |
|:--------|-------:|---------:|
| bleu_4  | 0.2500 |   0.0500 |
| cider_d | 0.8000 |        - |
"""

import json
import math
import numbers
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

_MISSING = "-"


def _validated_scores(scores: Mapping[str, float], name: str, finite: bool) -> dict[str, float]:
    """Returns the scores as a dict of Python floats, or raises naming the bad entry."""
    if not isinstance(scores, Mapping):
        raise ValueError(
            f"`{name}` must be a mapping of metric name to number, got {type(scores).__name__}."
        )
    validated = {}
    for metric, value in scores.items():
        if not isinstance(metric, str) or not metric:
            raise ValueError(
                f"`{name}` has a metric name that is not a non-empty string: {metric!r}."
            )
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
            raise ValueError(f"`{name}[{metric!r}]` must be a real number, got {value!r}.")
        if finite and not math.isfinite(value):
            raise ValueError(f"`{name}[{metric!r}]` is {value}; JSON needs finite numbers.")
        validated[metric] = float(value)
    return validated


def format_metrics_table(
    metrics: Mapping[str, float],
    baseline: Mapping[str, float] | None = None,
    title: str = "",
) -> str:
    """Formats metrics as an aligned table with columns `metric | model | baseline`.

    The table is valid Markdown (numbers right-aligned) and reads as plain
    text in a terminal. Rows follow the order of `metrics`; numbers have 4
    decimals; a metric the baseline lacks, or every metric when there is no
    baseline, shows `-` in the baseline column.

    Args:
        metrics: Metric name -> the model's score.
        baseline: Metric name -> the baseline's score (for example
            `captioning_baseline` or `chance_recalls`), or None.
        title: A line printed above the table, followed by a blank line;
            omitted when empty.

    Returns:
        The table, lines joined by newlines, with no trailing newline.

    Raises:
        ValueError: If `metrics` is empty, a value is not a real number, or
            `baseline` has a metric that `metrics` does not (named).

    Example:

    >>> print(format_metrics_table({"r@1": 0.5}, {"r@1": 0.001}, title="COCO 5k"))
    COCO 5k
    <BLANKLINE>
    | metric |  model | baseline |
    |:-------|-------:|---------:|
    | r@1    | 0.5000 |   0.0010 |
    """
    model_scores = _validated_scores(metrics, "metrics", finite=False)
    if not model_scores:
        raise ValueError("`metrics` is empty: there is nothing to report.")
    baseline_scores = {} if baseline is None else _validated_scores(baseline, "baseline", False)
    unknown = [metric for metric in baseline_scores if metric not in model_scores]
    if unknown:
        raise ValueError(f"`baseline` has metric(s) {unknown} that `metrics` does not have.")
    rows = [("metric", "model", "baseline")]
    for metric, value in model_scores.items():
        baseline_value = baseline_scores.get(metric)
        rows.append(
            (
                metric.replace("|", "\\|"),
                f"{value:.4f}",
                _MISSING if baseline_value is None else f"{baseline_value:.4f}",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(3)]

    def line(cells: tuple[str, str, str]) -> str:
        name, model, base = cells
        return f"| {name.ljust(widths[0])} | {model.rjust(widths[1])} | {base.rjust(widths[2])} |"

    separator = f"|:{'-' * widths[0]}-|-{'-' * widths[1]}:|-{'-' * widths[2]}:|"
    lines = [line(rows[0]), separator, *(line(row) for row in rows[1:])]
    if title:
        lines = [title, "", *lines]
    return "\n".join(lines)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise ValueError(f"`extra` holds a {type(value).__name__} that JSON cannot store: {value!r}.")


def write_metrics_json(
    path: str | os.PathLike[str],
    *,
    model: str,
    task: str,
    split: str,
    metrics: Mapping[str, float],
    baseline: Mapping[str, float] | None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Writes a metrics report as pretty JSON, atomically.

    The file holds `{"model", "task", "split", "metrics", "baseline",
    "extra"}`, in that order; `metrics` keeps its order, `baseline` is null
    when None and `extra` is `{}` when None. Parent folders are created. The
    JSON goes to a temporary file in the same folder that then replaces
    `path` with `os.replace`, so a reader never sees a half-written report.

    Args:
        path: Where to write, for example `saved_models/<model>/metrics.json`.
        model: The model's registered name.
        task: The task, for example `"captioning"` or `"retrieval"`.
        split: The evaluated split, for example `"test"`.
        metrics: Metric name -> the model's score (finite).
        baseline: Metric name -> the baseline's score (finite), or None.
        extra: More JSON-serialisable fields (numpy scalars and arrays and
            paths are converted), for example the dataset spec or the
            baseline caption.

    Returns:
        `path` as a `Path`.

    Raises:
        ValueError: If a name is empty, a score is not a finite real number,
            or `extra` holds something JSON cannot store.

    Example:

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     written = write_metrics_json(f"{folder}/run/metrics.json", model="clip_tiny",
    ...         task="retrieval", split="test", metrics={"text_to_image_r@1": 0.4},
    ...         baseline=None)
    ...     json.loads(written.read_text())["metrics"]
    {'text_to_image_r@1': 0.4}
    """
    for name, value in (("model", model), ("task", task), ("split", split)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"`{name}` must be a non-empty string, got {value!r}.")
    if extra is not None and not isinstance(extra, Mapping):
        raise ValueError(f"`extra` must be a mapping or None, got {type(extra).__name__}.")
    report = {
        "model": model,
        "task": task,
        "split": split,
        "metrics": _validated_scores(metrics, "metrics", finite=True),
        "baseline": None if baseline is None else _validated_scores(baseline, "baseline", True),
        "extra": dict(extra or {}),
    }
    text = json.dumps(report, indent=2, allow_nan=False, default=_json_default) + "\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("x", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
