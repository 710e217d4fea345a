"""The language of the shapes world: captions, VQA questions and matching statements.

Every function here takes the objects of one image as dicts with the keys `shape`,
`colour`, `size` and `position` (listed in reading order: top to bottom, then left
to right) and a `numpy.random.Generator`, so the text is as deterministic as the
images. `datasets/shapes.py` draws the images and writes the files.

Two properties hold by construction:

* every caption names every object's colour and shape, as `<colour> <shape>`;
* a false matching statement is a true statement of another scene drawn from the
  same distribution, so true and false statements follow one distribution and the
  text alone carries no information about the label.
"""

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

SHAPES = ("circle", "square", "triangle")
COLOURS = ("red", "green", "blue", "yellow", "purple", "cyan")
SIZES = ("small", "large")
# Cells of the 3x3 grid in reading order; a position's index is row * 3 + column.
POSITIONS = (
    "top left",
    "top",
    "top right",
    "left",
    "center",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
)
LOCATION_PHRASES = {
    "top left": "in the top left",
    "top": "at the top",
    "top right": "in the top right",
    "left": "on the left",
    "center": "in the center",
    "right": "on the right",
    "bottom left": "in the bottom left",
    "bottom": "at the bottom",
    "bottom right": "in the bottom right",
}
NUMBER_WORDS = ("zero", "one", "two", "three")
CAPTIONS_PER_IMAGE = 5
QUESTIONS_PER_IMAGE = 3

Object = dict[str, Any]


def reading_order(objects: Sequence[Object]) -> list[Object]:
    """Sorts objects top to bottom, then left to right."""
    return sorted(objects, key=lambda item: POSITIONS.index(item["position"]))


def describe(item: Object, *, with_size: bool = True, with_location: bool = True) -> str:
    """Names one object, e.g. `a large red circle in the top left`."""
    words = ["a", item["size"]] if with_size else ["a"]
    words += [item["colour"], item["shape"]]
    if with_location:
        words.append(LOCATION_PHRASES[item["position"]])
    return " ".join(words)


def _join(phrases: Sequence[str], with_commas: bool) -> str:
    if with_commas and len(phrases) > 2:
        return ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return " and ".join(phrases)


def canonical_caption(objects: Sequence[Object]) -> str:
    """The caption every image has first, with sizes and locations in reading order.

    Example: `a large red circle in the top left and a small blue square in the center`.
    """
    return _join([describe(item) for item in reading_order(objects)], with_commas=True)


def _relation(first: Object, second: Object, flipped: bool, with_size: bool) -> str:
    """`first` comes before `second` in reading order, so it is above or to the left."""
    first_row, first_column = divmod(POSITIONS.index(first["position"]), 3)
    second_row, second_column = divmod(POSITIONS.index(second["position"]), 3)
    if first_row < second_row:
        words = ("above", "below")
    elif first_column < second_column:
        words = ("to the left of", "to the right of")
    else:
        raise ValueError(
            f"objects at {first['position']!r} and {second['position']!r} are not in reading order"
        )
    if flipped:
        first, second, word = second, first, words[1]
    else:
        word = words[0]
    return " ".join(
        [
            describe(first, with_size=with_size, with_location=False),
            word,
            describe(second, with_size=with_size, with_location=False),
        ]
    )


def caption_candidates(objects: Sequence[Object]) -> dict[str, list[str]]:
    """Every non-canonical caption of the image, grouped by template and deduplicated."""
    objects = reading_order(objects)
    count = len(objects)
    noun = "shape" if count == 1 else "shapes"
    seen = {canonical_caption(objects)}
    candidates: dict[str, list[str]] = {
        "list": [],
        "there is": [],
        "image with": [],
        "count": [],
        "relation": [],
    }

    def add(kind: str, caption: str) -> None:
        if caption not in seen:
            seen.add(caption)
            candidates[kind].append(caption)

    for with_size, with_commas in itertools.product((True, False), (False, True)):
        listed = _join([describe(item, with_size=with_size) for item in objects], with_commas)
        add("list", listed)
        add("there is", f"there is {listed}")
        add("image with", f"an image with {listed}")
        add("count", f"{NUMBER_WORDS[count]} {noun}: {listed}")
        for first_index, second_index in itertools.combinations(range(count), 2):
            others = [
                item
                for index, item in enumerate(objects)
                if index not in (first_index, second_index)
            ]
            for flipped in (False, True):
                phrase = _relation(objects[first_index], objects[second_index], flipped, with_size)
                tail = [describe(item, with_size=with_size) for item in others]
                add("relation", _join([phrase, *tail], with_commas))
    return {kind: captions for kind, captions in candidates.items() if captions}


def make_captions(objects: Sequence[Object], rng: np.random.Generator) -> list[str]:
    """Five distinct captions: the canonical one, then four from random templates.

    A template is drawn uniformly among those that still have an unused caption,
    then a caption uniformly within it, so no template dominates the references.
    """
    captions = [canonical_caption(objects)]
    candidates = caption_candidates(objects)
    while len(captions) < CAPTIONS_PER_IMAGE:
        kinds = sorted(kind for kind, remaining in candidates.items() if remaining)
        if not kinds:
            raise ValueError(f"too few distinct captions for objects {list(objects)}")
        remaining = candidates[kinds[rng.integers(len(kinds))]]
        captions.append(remaining.pop(rng.integers(len(remaining))))
    return captions


def _exists_question(objects: Sequence[Object], rng: np.random.Generator) -> tuple[str, str]:
    present = {(item["colour"], item["shape"]) for item in objects}
    if rng.random() < 0.5:
        colour, shape = sorted(present)[rng.integers(len(present))]
        return f"is there a {colour} {shape}?", "yes"
    absent = [pair for pair in itertools.product(COLOURS, SHAPES) if pair not in present]
    near_misses = [
        (colour, shape)
        for colour, shape in absent
        if any(colour == c or shape == s for c, s in present)
    ]
    pool = near_misses if near_misses and rng.random() < 0.5 else absent
    colour, shape = pool[rng.integers(len(pool))]
    return f"is there a {colour} {shape}?", "no"


def make_questions(objects: Sequence[Object], rng: np.random.Generator) -> list[tuple[str, str]]:
    """Up to three (question, answer) pairs of distinct kinds, each answerable from the image.

    Kinds: the colour of a shape that occurs exactly once, the number of shapes, the
    shape in an occupied cell, whether a colour-shape pair is present (yes and no
    equally likely) and where a (unique) colour-shape pair is.
    """
    shape_counts = {shape: sum(item["shape"] == shape for item in objects) for shape in SHAPES}
    unique_shapes = [item for item in objects if shape_counts[item["shape"]] == 1]

    def pick(items: Sequence[Object]) -> Object:
        return items[rng.integers(len(items))]

    def colour_of_shape() -> tuple[str, str]:
        item = pick(unique_shapes)
        return f"what colour is the {item['shape']}?", item["colour"]

    def how_many() -> tuple[str, str]:
        return "how many shapes are there?", str(len(objects))

    def shape_at() -> tuple[str, str]:
        item = pick(objects)
        return f"what shape is {LOCATION_PHRASES[item['position']]}?", item["shape"]

    def where_is() -> tuple[str, str]:
        item = pick(objects)
        return f"where is the {item['colour']} {item['shape']}?", item["position"]

    kinds = [how_many, shape_at, where_is, lambda: _exists_question(objects, rng)]
    if unique_shapes:
        kinds.insert(0, colour_of_shape)
    order = rng.permutation(len(kinds))[:QUESTIONS_PER_IMAGE]
    return [kinds[index]() for index in sorted(order)]


def fact(item: Object) -> str:
    """A single statement about one object, e.g. `there is a red circle on the left`."""
    return f"there is {describe(item, with_size=False)}"


def _key(item: Object) -> tuple:
    return (item["colour"], item["shape"], item["position"], item["size"])


def make_matching(
    objects: Sequence[Object], rng: np.random.Generator, sample_scene: Callable[[], list[Object]]
) -> list[tuple[str, str]]:
    """One true and one false statement of the same form, in random order.

    The form is the canonical caption or a single fact (half the images each).
    The false statement describes another scene drawn by `sample_scene` from
    the same distribution (redrawn until it is false for this image), as
    image-text matching negatives are (ITM in ALBEF, MMF): true and false texts
    then follow one distribution, so the text alone carries no information about
    the label, and each image has one of each, so the image alone carries none.
    """
    truth = {_key(item) for item in objects}
    as_facts = rng.random() < 0.5
    item = objects[rng.integers(len(objects))]
    true_text = fact(item) if as_facts else canonical_caption(objects)
    while True:
        other = sample_scene()
        if as_facts:
            stated = other[rng.integers(len(other))]
            present = {key[:3] for key in truth}
            if _key(stated)[:3] not in present:
                false_text = fact(stated)
                break
        elif {_key(other_item) for other_item in other} != truth:
            false_text = canonical_caption(other)
            break
    pairs = [(true_text, "match"), (false_text, "mismatch")]
    return pairs if rng.random() < 0.5 else pairs[::-1]
