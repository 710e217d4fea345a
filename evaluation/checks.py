"""Checks and counts that several metrics share."""

import collections
from collections.abc import Iterable

import numpy as np


def index_vector(values, name: str, size: int, items: str) -> np.ndarray:
    """`values` as int64 after checking that it is a non-empty 1-D integer array in [0, size).

    `name` is the argument's name and `items` what the indices point at
    ("classes", "images"), for the error messages.
    """
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D, got shape {array.shape}.")
    if array.shape[0] == 0:
        raise ValueError(f"`{name}` is empty: there is nothing to score (no texts or examples).")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"`{name}` must hold integers, got dtype {array.dtype}.")
    out_of_range = np.flatnonzero((array < 0) | (array >= size))
    if out_of_range.size:
        position = int(out_of_range[0])
        raise ValueError(
            f"`{name}[{position}]` is {int(array[position])}, outside [0, {size}) "
            f"for {size} {items}."
        )
    return array.astype(np.int64, copy=False)


def most_frequent(normalized: Iterable[str], name: str, item: str) -> str:
    """The most frequent non-empty string, ties broken by the alphabetically first.

    Raises ValueError naming the argument `name` when no string is non-empty.
    """
    counts = collections.Counter(text for text in normalized if text)
    if not counts:
        raise ValueError(f"`{name}` has no {item} with a word in it.")
    return min(counts.items(), key=lambda entry: (-entry[1], entry[0]))[0]
