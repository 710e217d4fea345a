"""Captioning metrics (BLEU-1..4, CIDEr-D) and the most-frequent-caption baseline.

The scores come from pycocoevalcap's `Bleu(4)` and `Cider` scorers, the
Python part of coco-caption, so they match published COCO numbers up to
tokenization. coco-caption tokenizes with the Java PTB tokenizer; this module
uses `normalize_caption` instead, so no Java is needed.

Example:

>>> references = {1: ["A cat on a mat."], 2: ["Two dogs play in the snow."]}
>>> predictions = {1: "a cat on a mat", 2: "a dog in the snow"}
>>> sorted(caption_metrics(references, predictions))
['bleu_1', 'bleu_2', 'bleu_3', 'bleu_4', 'cider_d']
"""

import re
from collections.abc import Hashable, Iterable, Mapping, Sequence

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

from evaluation.checks import most_frequent

_APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc]")
_NOT_WORD_OR_SPACE = re.compile(r"[^\w\s]|_")
_MAX_KEYS_IN_MESSAGE = 5


def normalize_caption(text: str) -> str:
    """Lowercases a caption, strips punctuation and collapses whitespace.

    This replaces the Java PTB tokenizer of coco-caption: the metrics split the
    result on single spaces to get tokens. Apostrophes are deleted (`"dog's"`
    -> `"dogs"`, `"don't"` -> `"dont"`); every other character that is not a
    letter, digit or whitespace (ASCII and Unicode punctuation and symbols,
    `_` included) becomes a space (`"black-and-white"` -> `"black and white"`).
    PTB instead splits off clitics (`"dog 's"`), so scores can differ slightly
    from coco-caption's on captions with apostrophes.

    Args:
        text: A raw caption.

    Returns:
        The normalized caption: lowercase words separated by single spaces, no
        leading or trailing space; `""` when the caption has no words.

    Raises:
        ValueError: If `text` is not a string.

    Example:

    >>> normalize_caption("  A Dog's  ball,\\tred-and-white! ")
    'a dogs ball red and white'
    """
    if not isinstance(text, str):
        raise ValueError(f"A caption must be a string, got {type(text).__name__}: {text!r}")
    text = _APOSTROPHES.sub("", text.lower())
    return " ".join(_NOT_WORD_OR_SPACE.sub(" ", text).split())


def _describe_keys(keys: list[Hashable]) -> str:
    shown = ", ".join(repr(key) for key in keys[:_MAX_KEYS_IN_MESSAGE])
    if len(keys) > _MAX_KEYS_IN_MESSAGE:
        shown += f", ... ({len(keys)} in all)"
    return shown


def _normalized_inputs(
    references: Mapping[Hashable, Sequence[str]], predictions: Mapping[Hashable, str]
) -> tuple[dict[Hashable, list[str]], dict[Hashable, list[str]]]:
    """Validates the inputs and returns them normalized in pycocoevalcap's layout."""
    for name, mapping in (("references", references), ("predictions", predictions)):
        if not isinstance(mapping, Mapping):
            raise ValueError(
                f"`{name}` must be a mapping keyed by image, got {type(mapping).__name__}."
            )
    if not references:
        raise ValueError("`references` is empty: there are no images to score.")
    missing = [key for key in references if key not in predictions]
    if missing:
        raise ValueError(
            f"`predictions` has no caption for image key(s) {_describe_keys(missing)}."
        )
    extra = [key for key in predictions if key not in references]
    if extra:
        raise ValueError(
            f"`predictions` has image key(s) {_describe_keys(extra)} that are not in `references`."
        )
    ground_truths: dict[Hashable, list[str]] = {}
    results: dict[Hashable, list[str]] = {}
    for key, captions in references.items():
        if isinstance(captions, str) or not isinstance(captions, Sequence):
            raise ValueError(
                f"`references[{key!r}]` must be a sequence of caption strings, "
                f"got {type(captions).__name__}."
            )
        if len(captions) == 0:
            raise ValueError(f"`references[{key!r}]` has no reference captions.")
        normalized = [normalize_caption(caption) for caption in captions]
        for index, caption in enumerate(normalized):
            if not caption:
                raise ValueError(
                    f"`references[{key!r}][{index}]` has no words: {captions[index]!r}."
                )
        ground_truths[key] = normalized
        if not isinstance(predictions[key], str):
            raise ValueError(
                f"`predictions[{key!r}]` must be a string, got {type(predictions[key]).__name__}."
            )
        results[key] = [normalize_caption(predictions[key])]
    return ground_truths, results


def caption_metrics(
    references: Mapping[Hashable, Sequence[str]], predictions: Mapping[Hashable, str]
) -> dict[str, float]:
    """Scores predicted captions against reference captions, coco-caption style.

    Every caption is first passed through `normalize_caption`.

    BLEU-n is pycocoevalcap's `Bleu(4)`: corpus-level (clipped n-gram counts
    and lengths are summed over all images before the precisions and the
    brevity penalty are taken), with the reference length of each image being
    the reference length closest to the prediction's length (the shorter one
    on a tie). pycocoevalcap adds 1e-9 to each n-gram count denominator and
    1e-15 to each numerator, so a perfect BLEU is 1 - ~2e-10 rather than 1,
    and a BLEU-n with no matching n-gram is tiny (~1e-4 for BLEU-4) but not 0,
    exactly as in coco-caption.

    `cider_d` is pycocoevalcap's `Cider` scorer, which is the CIDEr-D variant
    of Vedantam, Zitnick and Parikh, "CIDEr: Consensus-based Image Description
    Evaluation", CVPR 2015 (arXiv:1411.5726, Section 6 "CIDEr-D"): TF-IDF
    n-gram vectors for n = 1..4, clipped candidate counts, a Gaussian length
    penalty (sigma = 6) and a factor of 10. The IDF is computed from the
    references of the images scored here, so CIDEr-D depends on the whole
    evaluated set and is 0 for a set of one image.

    Args:
        references: Image key -> the reference captions of that image (at
            least one, each with at least one word).
        predictions: Image key -> the predicted caption. Must have exactly the
            keys of `references`. An empty string is allowed and scores 0.

    Returns:
        `{"bleu_1", "bleu_2", "bleu_3", "bleu_4", "cider_d"}` -> score, as
        Python floats. BLEU is in [0, 1]; CIDEr-D in [0, 10].

    Raises:
        ValueError: If the keys of `predictions` and `references` differ (the
            message names missing or extra keys), if an image has no
            references or an empty reference, or if a caption is not a string.

    Example:

    >>> references = {"a": ["a red bus on a street"], "b": ["a cat asleep on a sofa"]}
    >>> predictions = {"a": "A red bus on a street.", "b": "a cat asleep on a sofa"}
    >>> metrics = caption_metrics(references, predictions)
    >>> {name: round(score, 6) for name, score in metrics.items()}
    {'bleu_1': 1.0, 'bleu_2': 1.0, 'bleu_3': 1.0, 'bleu_4': 1.0, 'cider_d': 10.0}
    """
    ground_truths, results = _normalized_inputs(references, predictions)
    bleu, _ = Bleu(4).compute_score(ground_truths, results, verbose=0)
    cider, _ = Cider().compute_score(ground_truths, results)
    metrics = {f"bleu_{n}": float(score) for n, score in enumerate(bleu, start=1)}
    metrics["cider_d"] = float(cider)
    return metrics


def most_frequent_caption(captions: Iterable[str]) -> str:
    """Returns the most frequent caption after normalization.

    Captions with no words after `normalize_caption` are skipped. Ties are
    broken deterministically: the lexicographically smallest of the tied
    normalized captions wins, whatever the input order.

    Args:
        captions: Raw captions, typically every caption of the training split.

    Returns:
        The normalized most frequent caption.

    Raises:
        ValueError: If no caption has a word, or a caption is not a string.

    Example:

    >>> most_frequent_caption(["A dog.", "a cat", "a dog", "A CAT!", "a bird"])
    'a cat'
    """
    return most_frequent(map(normalize_caption, captions), "captions", "caption")


def captioning_baseline(
    train_captions: Iterable[str], references: Mapping[Hashable, Sequence[str]]
) -> dict[str, float]:
    """Scores the blind baseline that predicts one caption for every image.

    The caption is `most_frequent_caption(train_captions)`; a model should
    beat these numbers by a wide margin.

    Args:
        train_captions: The captions to take the most frequent one from
            (the training split, so that the baseline never sees the test set).
        references: Image key -> reference captions, as for `caption_metrics`.

    Returns:
        `caption_metrics` of the baseline: the same keys, as Python floats.

    Raises:
        ValueError: As `most_frequent_caption` and `caption_metrics`.

    Example:

    >>> baseline = captioning_baseline(["a dog", "a dog", "a cat"], {1: ["a dog runs"]})
    >>> round(baseline["bleu_1"], 4)
    0.6065
    """
    caption = most_frequent_caption(train_captions)
    return caption_metrics(references, dict.fromkeys(references, caption))
