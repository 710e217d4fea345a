"""Sharded TFRecords of image-text data: one record per image, the image kept encoded.

Record features:
    key:            bytes, the image's name (unique within a split)
    image:          bytes, the encoded image exactly as read (JPEG, PNG, ...)
    texts:          bytes list, the image's captions, or the texts of its labelled rows
    labels:         bytes list, one label per text (empty for captions)
    answers:        bytes list, every human answer of every row, flattened (VQA)
    answer_counts:  int64 list, how many of `answers` belong to each row (VQA)

`write_shards` starts a new shard once the current one passes the size target
and writes `manifest.json` beside the shards (counts, checksums, where the
vocabulary comes from). `read_shards` reads everything but the images into the
in-memory examples the tasks use, and leaves the images to the tf.data stream
(datasets.image_sources.RecordImages).
"""

import glob
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from datasets.examples import CaptionExamples
from datasets.image_sources import FILES, RecordImages
from datasets.labelled_pairs import LabelledPairs

MANIFEST = "manifest.json"
FORMAT = "mmzoo-tfrecord/1"
DEFAULT_SHARD_MEGABYTES = 100
VOCABULARY_SOURCE = (
    "train.py builds the vocabulary from the `texts` feature of the training split's "
    "records (never from validation or test)."
)
METADATA_FEATURES = {
    "key": tf.io.FixedLenFeature([], tf.string),
    "texts": tf.io.VarLenFeature(tf.string),
    "labels": tf.io.VarLenFeature(tf.string),
    "answers": tf.io.VarLenFeature(tf.string),
    "answer_counts": tf.io.VarLenFeature(tf.int64),
}


def _bytes_feature(values: Sequence[bytes]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _utf8(values: Sequence[str]) -> list[bytes]:
    return [value.encode("utf-8") for value in values]


def image_groups(examples: CaptionExamples | LabelledPairs) -> list[dict]:
    """One dict per image, in first-seen order: its key and the rows that read it."""
    if isinstance(examples, CaptionExamples):
        return [
            {"key": path, "texts": list(captions), "labels": [], "answer_lists": []}
            for path, captions in zip(examples.image_paths, examples.captions, strict=True)
        ]
    answer_lists = getattr(examples, "answer_lists", None)
    groups: dict[str, dict] = {}
    for row, key in enumerate(examples.image_paths):
        group = groups.setdefault(key, {"key": key, "texts": [], "labels": [], "answer_lists": []})
        group["texts"].append(examples.texts[row])
        group["labels"].append(examples.labels[row])
        if answer_lists is not None:
            group["answer_lists"].append(list(answer_lists[row]))
    return list(groups.values())


def record_keys(keys: Sequence[str]) -> list[str]:
    """Names for the records: file paths relative to their common folder."""
    if not keys or not all(os.path.isabs(key) for key in keys):
        return list(keys)
    root = os.path.commonpath([os.path.dirname(key) for key in keys])
    return [os.path.relpath(key, root) for key in keys]


def encode_record(key: str, image_bytes: bytes, group: dict) -> bytes:
    answers = [answer for answers in group["answer_lists"] for answer in answers]
    features = {
        "key": _bytes_feature([key.encode("utf-8")]),
        "image": _bytes_feature([image_bytes]),
        "texts": _bytes_feature(_utf8(group["texts"])),
        "labels": _bytes_feature(_utf8(group["labels"])),
        "answers": _bytes_feature(_utf8(answers)),
        "answer_counts": tf.train.Feature(
            int64_list=tf.train.Int64List(value=[len(a) for a in group["answer_lists"]])
        ),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def write_shards(
    examples: CaptionExamples | LabelledPairs,
    output_dir: str | Path,
    *,
    split: str = "train",
    shard_megabytes: float = DEFAULT_SHARD_MEGABYTES,
    images=None,
) -> dict:
    """Writes `examples` as `<split>-NNNNN-of-MMMMM.tfrecord` shards plus the manifest.

    Args:
        examples: the split to convert (its images are read through `images`).
        output_dir: folder for the shards and manifest.json (created if missing).
        split: the shard name prefix and the manifest entry.
        shard_megabytes: a new shard starts once the current one reaches this size.
        images: the examples' image source (default: `examples.images`, else files).

    Returns:
        The manifest entry of this split.
    """
    if shard_megabytes <= 0:
        raise ValueError(f"shard size must be > 0 MB, got {shard_megabytes}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for stale in output_dir.glob(f"{split}-*.tfrecord"):
        stale.unlink()
    images = images or getattr(examples, "images", FILES)
    groups = image_groups(examples)
    keys = record_keys([group["key"] for group in groups])
    if len(set(keys)) != len(keys):
        raise ValueError(f"{examples.source}: two images share a record key; keys must be unique.")
    stream = images.rows([group["key"] for group in groups], training=False, seed=None)
    limit = shard_megabytes * 1024 * 1024
    shards: list[dict] = []
    writer = None
    for group, key, element in zip(groups, keys, stream.as_numpy_iterator(), strict=True):
        if writer is None or shards[-1]["bytes"] >= limit:
            if writer is not None:
                writer.close()
            path = output_dir / f"{split}-{len(shards):05d}.tfrecord.partial"
            writer = tf.io.TFRecordWriter(str(path))
            shards.append({"path": path, "images": 0, "rows": 0, "bytes": 0})
        record = encode_record(key, element["image_bytes"], group)
        writer.write(record)
        shards[-1]["images"] += 1
        shards[-1]["rows"] += len(group["texts"])
        shards[-1]["bytes"] += len(record)
    if writer is None:
        raise ValueError(f"{examples.source}: no examples to convert.")
    writer.close()
    entries = []
    for index, shard in enumerate(shards):
        final = output_dir / f"{split}-{index:05d}-of-{len(shards):05d}.tfrecord"
        shard["path"].rename(final)
        entries.append(
            {
                "file": final.name,
                "images": shard["images"],
                "rows": shard["rows"],
                "bytes": final.stat().st_size,
                "sha256": sha256(final),
            }
        )
    entry = {
        "source": examples.source,
        "kind": "captions" if isinstance(examples, CaptionExamples) else "labelled",
        "images": sum(shard["images"] for shard in entries),
        "rows": sum(shard["rows"] for shard in entries),
        "shards": entries,
    }
    manifest = read_manifest(output_dir) or {"format": FORMAT, "splits": {}}
    manifest["vocabulary_source"] = VOCABULARY_SOURCE
    manifest["splits"][split] = entry
    (output_dir / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return entry


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: str | Path) -> dict | None:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read the shard manifest: {error}") from error


def verify_shards(folder: str | Path) -> list[str]:
    """Checks every shard the manifest lists against its size and checksum; returns problems."""
    manifest = read_manifest(folder)
    if manifest is None:
        return [f"{Path(folder) / MANIFEST}: no manifest"]
    problems = []
    for split, entry in manifest["splits"].items():
        for shard in entry["shards"]:
            path = Path(folder) / shard["file"]
            if not path.is_file():
                problems.append(f"{path}: missing ({split} split)")
            elif path.stat().st_size != shard["bytes"] or sha256(path) != shard["sha256"]:
                problems.append(f"{path}: size or sha256 differs from the manifest")
    return problems


def is_shard_spec(spec: str) -> bool:
    """A path or glob of .tfrecord files (`shards/train-*.tfrecord`)."""
    return spec.endswith(".tfrecord")


def shard_files(spec: str) -> tuple[str, ...]:
    files = tuple(sorted(glob.glob(spec)))
    if not files:
        raise ValueError(f"Dataset {spec!r}: no TFRecord files match.")
    return files


def read_shards(spec: str) -> CaptionExamples | LabelledPairs:
    """Reads the shards `spec` matches into in-memory examples whose images stay in the shards.

    Raises:
        ValueError: no file matches, a record lacks a feature, the shards mix captions
            and labelled records, a key repeats, or the counts differ from the manifest.
    """
    files = shard_files(spec)
    records = tf.data.TFRecordDataset(list(files)).batch(1024)
    keys, texts, labels, answers, answer_counts = [], [], [], [], []
    try:
        for batch in records:
            parsed = tf.io.parse_example(batch, METADATA_FEATURES)
            keys += [key.decode("utf-8") for key in parsed["key"].numpy()]
            for name, column in (("texts", texts), ("labels", labels), ("answers", answers)):
                column += _lists(parsed[name], lambda v: v.decode("utf-8"))
            answer_counts += _lists(parsed["answer_counts"], int)
    except tf.errors.OpError as error:
        raise ValueError(f"Dataset {spec!r}: cannot read the records: {error.message}") from error
    if not keys:
        raise ValueError(f"Dataset {spec!r}: the shards hold no records.")
    if len(set(keys)) != len(keys):
        raise ValueError(f"Dataset {spec!r}: a record key repeats; each image must be stored once.")
    check_manifest_counts(spec, files, len(keys), sum(map(len, texts)))
    images = RecordImages(files)
    labelled = [bool(row) for row in labels]
    if not any(labelled):
        return CaptionExamples(keys, texts, spec, images=images)
    if not all(labelled):
        raise ValueError(f"Dataset {spec!r}: some records have labels and some do not.")
    return labelled_examples(spec, images, keys, texts, labels, answers, answer_counts)


def labelled_examples(spec, images, keys, texts, labels, answers, answer_counts) -> LabelledPairs:
    rows = {"image_paths": [], "texts": [], "labels": [], "answer_lists": []}
    for key, group_texts, group_labels, group_answers, counts in zip(
        keys, texts, labels, answers, answer_counts, strict=True
    ):
        if len(group_texts) != len(group_labels):
            raise ValueError(f"Dataset {spec!r}: record {key!r} has unequal texts and labels.")
        offsets = np.cumsum([0, *counts])
        rows["image_paths"] += [key] * len(group_texts)
        rows["texts"] += group_texts
        rows["labels"] += group_labels
        rows["answer_lists"] += [
            group_answers[offsets[i] : offsets[i + 1]] for i in range(len(counts))
        ]
    has_answers = len(rows["answer_lists"]) == len(rows["texts"])
    return LabelledPairs(
        rows["image_paths"],
        rows["texts"],
        rows["labels"],
        spec,
        answer_lists=rows["answer_lists"] if has_answers else None,
        images=images,
    )


def _lists(sparse: tf.SparseTensor, convert) -> list[list]:
    dense = tf.RaggedTensor.from_sparse(sparse).to_list()
    return [[convert(value) for value in row] for row in dense]


def check_manifest_counts(spec: str, files: Sequence[str], images: int, rows: int) -> None:
    """When the files sit in one folder with a manifest, every shard of the split they
    belong to must be there and the counts must match (a partial copy is caught
    before training, not found out from a smaller dataset)."""
    folders = {os.path.dirname(os.path.abspath(file)) for file in files}
    manifest = read_manifest(folders.pop()) if len(folders) == 1 else None
    if manifest is None:
        return
    names = {os.path.basename(file) for file in files}
    for split, entry in manifest.get("splits", {}).items():
        listed = {shard["file"] for shard in entry["shards"]}
        if not names <= listed:
            continue
        missing = sorted(listed - names)
        if missing:
            raise ValueError(
                f"Dataset {spec!r}: {len(missing)} of the {len(listed)} shards of the "
                f"manifest's {split} split are missing: {', '.join(missing[:3])}"
            )
        if (entry["images"], entry["rows"]) != (images, rows):
            raise ValueError(
                f"Dataset {spec!r}: the manifest's {split} split lists {entry['images']} "
                f"images and {entry['rows']} texts, the shards hold {images} and {rows}."
            )
