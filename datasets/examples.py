"""In-memory metadata of an image-text split, as the readers return it."""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from datasets.image_sources import FILES, ImageSource
from datasets.validation import EMPTY_TEXT, Problem, require_usable_rows, text_problem


@dataclass(frozen=True)
class CaptionExamples:
    """Images and their reference captions (any number per image).

    Attributes:
        image_paths: absolute path of each image.
        captions: the captions of each image, aligned with `image_paths`.
        source: where the examples were read from, for messages and model cards.
        images: where the encoded images are read from; `image_paths` are its keys.
        problems: what the reader found wrong and left out (captions, metadata rows,
            images with no caption left), each naming the file and position; the
            validation pass (datasets.checked_splits) reports them.
    """

    image_paths: list[str]
    captions: list[list[str]]
    source: str
    images: ImageSource = FILES
    problems: tuple[Problem, ...] = ()

    def __post_init__(self):
        if len(self.image_paths) != len(self.captions):
            raise ValueError(
                f"{self.source}: {len(self.image_paths)} images but {len(self.captions)} "
                "caption lists."
            )

    def __len__(self) -> int:
        return len(self.image_paths)

    def summary(self) -> str:
        return f"{len(self)} images with {sum(map(len, self.captions))} captions from {self.source}"

    def pairs(self) -> tuple[list[str], list[str], list[int]]:
        """Flattens to one (image path, caption, image index) triple per caption."""
        paths, texts, indices = [], [], []
        for index, (path, captions) in enumerate(zip(self.image_paths, self.captions, strict=True)):
            for caption in captions:
                paths.append(path)
                texts.append(caption)
                indices.append(index)
        return paths, texts, indices

    def all_captions(self) -> list[str]:
        return [caption for captions in self.captions for caption in captions]

    def subset(self, indices, source_suffix: str) -> "CaptionExamples":
        """The examples at `indices`, without the reader's problems (they name no row)."""
        return CaptionExamples(
            [self.image_paths[index] for index in indices],
            [self.captions[index] for index in indices],
            f"{self.source}{source_suffix}",
            images=self.images,
        )

    def split(self, fraction: float, seed: int) -> tuple["CaptionExamples", "CaptionExamples"]:
        """Splits by image (never one image on both sides) into (rest, held out).

        The reader's problems go with the rest (the training part), to be reported once.
        """
        order = np.random.default_rng(seed).permutation(len(self))
        held_out = max(1, int(round(len(self) * fraction)))
        if held_out >= len(self):
            raise ValueError(f"{self.source}: {len(self)} images are too few to hold some out.")
        rest = sorted(order[held_out:].tolist())
        kept = sorted(order[:held_out].tolist())
        train_part = dataclasses.replace(self.subset(rest, " (train part)"), problems=self.problems)
        return train_part, self.subset(kept, " (held-out part)")


class CaptionCollector:
    """Gathers the captions of each image from metadata rows, recording what is wrong.

    A bad caption (missing, empty, not UTF-8) is left out and recorded as a Problem
    naming where it is; an image left with no caption is recorded and left out too.
    Other bad rows are recorded with `reject`.

    Example:
        >>> collector = CaptionCollector()
        >>> collector.add("/data/cat.jpg", "a cat", "captions.txt line 1")
        >>> collector.add("/data/cat.jpg", "  ", "captions.txt line 2")  # recorded, left out
        >>> examples = collector.examples("captions.txt")
    """

    def __init__(self) -> None:
        self._captions: dict[str, list[str]] = {}
        self._first_rows: dict[str, str] = {}
        self._problems: list[tuple[str | None, Problem]] = []

    def add_image(self, image: str, where: str) -> None:
        """Registers an image (first at `where`), which then needs a caption to be kept."""
        self._captions.setdefault(image, [])
        self._first_rows.setdefault(image, where)

    def add(self, image: str, caption: object, where: str) -> None:
        """Adds one caption of `image`, read at `where`; a bad one is recorded instead."""
        self.add_image(image, where)
        problem = text_problem(caption, "caption")
        if problem:
            self.reject(Problem(None, where, *problem), image)
        else:
            self._captions[image].append(caption.strip())

    def reject(self, problem: Problem, image: str | None = None) -> None:
        """Records a row left out: of `image` (reported with it), or of no known image."""
        self._problems.append((image, problem))

    def examples(self, source: str, images: Sequence[str] | None = None) -> CaptionExamples:
        """The images with captions, and every problem of them or of no known image.

        Args:
            source: the metadata file, for messages.
            images: which registered images to keep, in order (default: all, as first seen).

        Raises:
            ValueError: no image is left with a caption.
        """
        images = list(self._captions) if images is None else images
        wanted = set(images)
        problems = [p for image, p in self._problems if image is None or image in wanted]
        kept = [image for image in images if self._captions[image]]
        problems += [
            Problem(None, self._first_rows[image], EMPTY_TEXT, f"no usable caption of {image}")
            for image in images
            if not self._captions[image]
        ]
        require_usable_rows(source, len(kept), problems)
        captions = [self._captions[image] for image in kept]
        return CaptionExamples(kept, captions, source, problems=tuple(problems))
