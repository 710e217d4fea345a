"""Settings that every task reads, taken from the command line."""

from dataclasses import dataclass

from datasets.image_sources import FILES
from datasets.pipeline import image_text_dataset

EVALUATION_BATCH_SIZE = 256


@dataclass(frozen=True)
class TaskOptions:
    """What a task needs to shape data, build its model and export it.

    Attributes:
        image_size: side of the square model input, in pixels.
        batch_size: global batch size.
        sequence_length: tokens per text, including <start>/<end> for captions.
        max_vocabulary_size: cap on the word vocabulary, reserved tokens included.
        beam_size: beams for caption decoding (1 is greedy).
        seed: shuffling seed.
        class_weight: "balanced" weights classification examples by inverse class
            frequency; None weighs every example the same.
        loss: the retrieval loss, "infonce" or "vsepp".
    """

    image_size: int = 64
    batch_size: int = 64
    sequence_length: int = 32
    max_vocabulary_size: int = 10000
    beam_size: int = 3
    seed: int = 0
    class_weight: str | None = None
    loss: str = "infonce"


def training_pairs_dataset(
    image_paths,
    texts,
    options: TaskOptions,
    batch_transform,
    training: bool,
    extras=None,
    images=FILES,
):
    """`image_text_dataset` with the batch size, image size and seed of `options`."""
    return image_text_dataset(
        image_paths,
        texts,
        image_size=options.image_size,
        batch_size=options.batch_size,
        batch_transform=batch_transform,
        training=training,
        seed=options.seed,
        extras=extras,
        images=images,
    )
