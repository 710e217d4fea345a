"""Settings that every task reads, taken from the command line."""

from dataclasses import dataclass

from datasets.augment import Augmentation
from datasets.decode_errors import DecodeErrorLog
from datasets.image_sources import FILES
from datasets.pipeline import image_text_dataset
from serving.guards import texts_from_strings

EVALUATION_BATCH_SIZE = 256


@dataclass(frozen=True)
class TaskOptions:
    """What a task needs to shape data, build its model and export it.

    Attributes:
        image_size: side of the square model input, in pixels.
        batch_size: global batch size.
        sequence_length: tokens per text, including <start>/<end> for captions.
        max_vocabulary_size: the text vocabulary's size, reserved tokens included
            (`--vocab-size`): a cap for "word", the learner's target for "wordpiece".
        beam_size: beams for caption decoding (1 is greedy).
        seed: shuffling seed.
        class_weight: "balanced" weights classification examples by inverse class
            frequency; None weighs every example the same.
        loss: the retrieval loss, "infonce" or "vsepp".
        augmentation: training-only augmentation (`--augment`), or None.
        cache: "auto", "memory" or "off": keep decoded rows in memory (`--cache`).
        deterministic: training rows in an order fixed by the seed alone
            (`--deterministic`), at some cost in speed.
        tokenizer: "word" or "wordpiece" (`--tokenizer`, datasets.tokenizers).
        raw_text: the model reads raw strings ("text") instead of token ids
            ("tokens"): its text encoder is a hub: module that tokenizes itself.
    """

    image_size: int = 64
    batch_size: int = 64
    sequence_length: int = 32
    max_vocabulary_size: int = 10000
    beam_size: int = 3
    seed: int = 0
    class_weight: str | None = None
    loss: str = "infonce"
    augmentation: Augmentation | None = None
    cache: str = "auto"
    deterministic: bool = False
    tokenizer: str = "word"
    raw_text: bool = False


def text_inputs(texts, vocabulary, options: TaskOptions) -> dict:
    """The model's text input for string[B] `texts`: {"text": texts} for a model that
    reads raw strings (`options.raw_text`), else {"tokens": int32 [B, sequence_length]}.

    Raw strings are cut as the signatures cut them (`texts_from_strings`), so a long
    text reaches a hub text encoder the same way in training and in serving.
    """
    if options.raw_text:
        return {"text": texts_from_strings(texts, "text", options.sequence_length)}
    return {"tokens": vocabulary.encode(texts, options.sequence_length)}


def training_pairs_dataset(
    image_paths,
    texts,
    options: TaskOptions,
    batch_transform,
    training: bool,
    extras=None,
    images=FILES,
    decode_errors: DecodeErrorLog | None = None,
):
    """`image_text_dataset` with the input settings of `options`."""
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
        augmentation=options.augmentation,
        cache=options.cache,
        deterministic=options.deterministic,
        decode_errors=decode_errors,
    )
