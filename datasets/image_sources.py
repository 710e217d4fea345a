"""Where a split's encoded images come from: files on disk, or TFRecord shards.

The pipeline works on rows (one per image-text pair). Each row names its image
by a key: a file path for `FileImages`, the record's `key` feature for
`RecordImages`, the element's `image_key` for `TfdsImages`. A source turns the
row keys into a tf.data stream of {"row": int64, "image_bytes": string}; the
pipeline then gathers the row's text and targets from memory, so the tasks
never see where the bytes came from.

Evaluation streams (`training=False`) yield the rows in ascending order, so
predictions line up with the examples.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
# Rows held for shuffling record and TFDS streams, whose order on disk cannot be permuted
# cheaply; they hold encoded bytes (a few KB each), not decoded images.
RECORD_SHUFFLE_BUFFER = 4096
RECORD_FEATURES = {
    "key": tf.io.FixedLenFeature([], tf.string),
    "image": tf.io.FixedLenFeature([], tf.string),
}


@dataclass(frozen=True)
class FileImages:
    """Each row key is the path of an encoded image file."""

    def rows(self, row_keys: Sequence[str], *, training: bool, seed: int | None):
        rows = tf.data.Dataset.range(len(row_keys))
        if training:
            rows = rows.shuffle(len(row_keys), seed=seed, reshuffle_each_iteration=True)
        paths = tf.constant(list(row_keys), tf.string)
        return rows.map(
            lambda row: {"row": row, "image_bytes": tf.io.read_file(tf.gather(paths, row))},
            num_parallel_calls=AUTOTUNE,
        )


@dataclass(frozen=True)
class RecordImages:
    """Each row key is the `key` feature of a record in `files` (one record per image).

    Records of other splits in the same shards are skipped. Training reads the
    shards interleaved, in parallel and in a shuffled order (the files are the
    unit a multi-worker strategy shards); evaluation reads them in order.
    """

    files: tuple[str, ...]

    def rows(self, row_keys: Sequence[str], *, training: bool, seed: int | None):
        files = tf.data.Dataset.from_tensor_slices(list(self.files))
        if training:
            files = files.shuffle(len(self.files), seed=seed, reshuffle_each_iteration=True)
            records = files.interleave(
                tf.data.TFRecordDataset,
                cycle_length=min(len(self.files), 8),
                num_parallel_calls=AUTOTUNE,
            )
        else:
            records = files.flat_map(tf.data.TFRecordDataset)

        def parse(record):
            features = tf.io.parse_single_example(record, RECORD_FEATURES)
            return features["key"], features["image"]

        keyed = records.map(parse, num_parallel_calls=AUTOTUNE)
        return keyed_rows(keyed, row_keys, training=training, seed=seed)


@dataclass(frozen=True)
class TfdsImages:
    """Each row key is the `image_key` of an element of a TFDS split (datasets.tfds_source)."""

    spec: str
    split: str
    data_dir: str | None = None

    def rows(self, row_keys: Sequence[str], *, training: bool, seed: int | None):
        from datasets.tfds_source import load_tfds  # TFDS is imported only when used

        stream = load_tfds(self.spec, self.split, self.data_dir)
        keyed = stream.map(lambda element: (element["image_key"], element["image_bytes"]))
        return keyed_rows(first_of_each_run(keyed), row_keys, training=training, seed=seed)


def first_of_each_run(keyed: tf.data.Dataset) -> tf.data.Dataset:
    """Drops an element whose key equals the previous one (CLEVR streams an image once
    per question; the rows of that image are found by key)."""

    def step(previous, element):
        key, image_bytes = element
        return key, (key, image_bytes, tf.not_equal(key, previous))

    def is_new(key, image_bytes, new):
        return new

    def without_flag(key, image_bytes, new):
        return key, image_bytes

    marked = keyed.scan(tf.constant("\0none"), step)
    return marked.filter(is_new).map(without_flag)


def keyed_rows(keyed: tf.data.Dataset, row_keys: Sequence[str], *, training: bool, seed):
    """(key, image bytes) per image -> {"row", "image_bytes"} per row that names that key.

    Images no row names are skipped; a training stream is shuffled through a buffer.
    """
    groups, rows_of_group = group_rows_by_key(row_keys)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(groups, tf.string), tf.range(len(groups), dtype=tf.int64)
        ),
        default_value=-1,
    )
    rows_of_group = tf.ragged.constant(rows_of_group, dtype=tf.int64)

    def to_rows(group, image_bytes):
        rows = rows_of_group[group]
        return tf.data.Dataset.from_tensor_slices(
            {"row": rows, "image_bytes": tf.fill(tf.shape(rows), image_bytes)}
        )

    stream = keyed.map(lambda key, image_bytes: (table.lookup(key), image_bytes))
    stream = stream.filter(lambda group, image_bytes: group >= 0).flat_map(to_rows)
    if training:
        stream = stream.shuffle(RECORD_SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    return stream


def group_rows_by_key(row_keys: Sequence[str]) -> tuple[list[str], list[list[int]]]:
    """Unique keys in first-seen order and the rows of each."""
    groups: dict[str, list[int]] = {}
    for row, key in enumerate(row_keys):
        groups.setdefault(key, []).append(row)
    return list(groups), [np.asarray(rows, np.int64).tolist() for rows in groups.values()]


FILES = FileImages()
ImageSource = FileImages | RecordImages | TfdsImages
