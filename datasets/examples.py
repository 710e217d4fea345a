"""In-memory metadata of an image-text split, as the readers return it."""

from dataclasses import dataclass

import numpy as np

from datasets.image_sources import FILES, ImageSource


@dataclass(frozen=True)
class CaptionExamples:
    """Images and their reference captions (any number per image).

    Attributes:
        image_paths: absolute path of each image.
        captions: the captions of each image, aligned with `image_paths`.
        source: where the examples were read from, for messages and model cards.
        images: where the encoded images are read from; `image_paths` are its keys.
    """

    image_paths: list[str]
    captions: list[list[str]]
    source: str
    images: ImageSource = FILES

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
        return CaptionExamples(
            [self.image_paths[index] for index in indices],
            [self.captions[index] for index in indices],
            f"{self.source}{source_suffix}",
            images=self.images,
        )

    def split(self, fraction: float, seed: int) -> tuple["CaptionExamples", "CaptionExamples"]:
        """Splits by image (never one image on both sides) into (rest, held out)."""
        order = np.random.default_rng(seed).permutation(len(self))
        held_out = max(1, int(round(len(self) * fraction)))
        if held_out >= len(self):
            raise ValueError(f"{self.source}: {len(self)} images are too few to hold some out.")
        rest = sorted(order[held_out:].tolist())
        kept = sorted(order[:held_out].tolist())
        return self.subset(rest, " (train part)"), self.subset(kept, " (held-out part)")
