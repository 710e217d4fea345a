"""Datasets whose images live in a stream, not in files: TFRecord shards and TFDS.

Both are read into the same in-memory examples as file datasets; their
`images` source streams the encoded images (datasets.image_sources).
"""

from pathlib import Path

from datasets.examples import CaptionExamples
from datasets.image_sources import TfdsImages
from datasets.labelled_pairs import LabelledPairs
from datasets.tfrecords import is_shard_spec, read_shards

CAPTION_TASKS = ("captioning", "retrieval")


def is_stream_spec(spec: str) -> bool:
    return is_shard_spec(spec) or spec.startswith("tfds:")


def read_stream_spec(
    task: str, spec: str, role: str = "train", tfds_data_dir: str | Path | None = None
) -> CaptionExamples | LabelledPairs:
    """Reads a shard glob or a `tfds:` spec as `task`'s examples for split `role`.

    Raises:
        ValueError: the data cannot be read, or holds captions where the task needs
            labelled pairs (or the other way round).
    """
    if spec.startswith("tfds:"):
        return read_tfds_examples(task, spec, role, tfds_data_dir)
    examples = read_shards(spec)
    wants_captions = task in CAPTION_TASKS
    if isinstance(examples, CaptionExamples) != wants_captions:
        held = "captions" if isinstance(examples, CaptionExamples) else "labelled pairs"
        raise ValueError(
            f"Dataset {spec!r} holds {held}, which the {task} task does not read: convert "
            f"the source with `python convert_dataset.py --task {task} ...`."
        )
    return examples


def read_tfds_examples(
    task: str, spec: str, role: str, data_dir: str | Path | None
) -> CaptionExamples | LabelledPairs:
    from datasets.tfds_source import read_tfds_texts  # TFDS is imported only when used

    texts = read_tfds_texts(spec, role, data_dir, task=task)
    images = TfdsImages(spec, role, None if data_dir is None else str(data_dir))
    if task in CAPTION_TASKS:
        return CaptionExamples(texts.image_keys, texts.captions, texts.source, images=images)
    return LabelledPairs(texts.image_keys, texts.texts, texts.labels, texts.source, images=images)
