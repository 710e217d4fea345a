"""In-memory metadata of (image, text, label) examples: classification and VQA."""

import dataclasses
from dataclasses import dataclass

import numpy as np

from datasets.image_sources import FILES, ImageSource
from datasets.validation import Problem


@dataclass(frozen=True)
class LabelledPairs:
    """One example per (image, text) pair with a string label.

    Attributes:
        image_paths: absolute path of each example's image (images may repeat).
        texts: the text of each example (a statement, or a question for VQA).
        labels: the training target of each example (a class, or an answer).
        source: where the examples were read from, for messages and model cards.
        answer_lists: optional; every human answer of each example (VQA v2 has ten),
            which evaluation scores against instead of the single label.
        images: where the encoded images are read from; `image_paths` are its keys.
        problems: what the reader found wrong and left out (metadata rows with a
            missing or empty field, unknown or repeated ids), each naming the file and
            position; the validation pass (datasets.checked_splits) reports them.
    """

    image_paths: list[str]
    texts: list[str]
    labels: list[str]
    source: str
    answer_lists: list[list[str]] | None = None
    images: ImageSource = FILES
    problems: tuple[Problem, ...] = ()

    def __post_init__(self):
        if not len(self.image_paths) == len(self.texts) == len(self.labels):
            raise ValueError(
                f"{self.source}: {len(self.image_paths)} images, {len(self.texts)} texts and "
                f"{len(self.labels)} labels; expected one of each per example."
            )
        if self.answer_lists is not None and len(self.answer_lists) != len(self.labels):
            raise ValueError(
                f"{self.source}: {len(self.labels)} labels but {len(self.answer_lists)} answer "
                "lists; expected one answer list per example."
            )

    def __len__(self) -> int:
        return len(self.image_paths)

    def summary(self) -> str:
        return f"{len(self)} examples of {len(set(self.image_paths))} images from {self.source}"

    def subset(self, indices, source_suffix: str) -> "LabelledPairs":
        """The examples at `indices`, without the reader's problems (they name no row)."""
        indices = list(indices)
        answer_lists = None
        if self.answer_lists is not None:
            answer_lists = [self.answer_lists[index] for index in indices]
        return LabelledPairs(
            [self.image_paths[index] for index in indices],
            [self.texts[index] for index in indices],
            [self.labels[index] for index in indices],
            f"{self.source}{source_suffix}",
            answer_lists=answer_lists,
            images=self.images,
        )

    def split(self, fraction: float, seed: int) -> tuple["LabelledPairs", "LabelledPairs"]:
        """Splits by image (all examples of one image on one side) into (rest, held out).

        The reader's problems go with the rest (the training part), to be reported once.
        """
        images = sorted(set(self.image_paths))
        order = np.random.default_rng(seed).permutation(len(images))
        held_out = max(1, int(round(len(images) * fraction)))
        if held_out >= len(images):
            raise ValueError(f"{self.source}: {len(images)} images are too few to hold some out.")
        kept_images = {images[index] for index in order[:held_out]}
        kept = [i for i, path in enumerate(self.image_paths) if path in kept_images]
        rest = [i for i, path in enumerate(self.image_paths) if path not in kept_images]
        train_part = dataclasses.replace(self.subset(rest, " (train part)"), problems=self.problems)
        return train_part, self.subset(kept, " (held-out part)")
