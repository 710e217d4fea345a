"""Sharded TFRecords: conversion, manifest, round trip, and streams that match the files."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datasets.examples import CaptionExamples
from datasets.image_sources import RecordImages
from datasets.labelled_pairs import LabelledPairs
from datasets.pipeline import image_dataset, image_text_dataset
from datasets.tfrecords import read_shards, verify_shards, write_shards

ROOT = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(0)


def write_images(folder: Path, count: int) -> list[str]:
    """Noise JPEGs and PNGs (noise so that every file has its own bytes)."""
    paths = []
    for index in range(count):
        path = folder / "images" / f"image_{index}.{'png' if index % 3 == 0 else 'jpg'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(RNG.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture
def captions(tmp_path):
    paths = write_images(tmp_path, 7)
    texts = [[f"caption {i} of image {n}" for i in range(1 + n % 3)] for n in range(7)]
    return CaptionExamples(paths, texts, "captions test")


@pytest.fixture
def labelled(tmp_path):
    paths = write_images(tmp_path, 4)
    rows = [0, 0, 1, 2, 2, 2, 3]  # several questions per image, stored with the image once
    return LabelledPairs(
        [paths[i] for i in rows],
        [f"question {row} é" for row in range(len(rows))],
        [f"answer {row % 2}" for row in range(len(rows))],
        "labelled test",
        answer_lists=[[f"answer {row % 2}", "other", "x"] for row in range(len(rows))],
    )


def shards_of(folder: Path, split: str = "train") -> str:
    return str(folder / f"{split}-*.tfrecord")


def test_caption_round_trip_keeps_every_caption_and_the_exact_image_bytes(captions, tmp_path):
    entry = write_shards(captions, tmp_path / "shards", shard_megabytes=0.002)
    assert len(entry["shards"]) > 1, "a tiny size target must split the data into shards"
    assert (entry["images"], entry["rows"]) == (7, sum(map(len, captions.captions)))
    read = read_shards(shards_of(tmp_path / "shards"))
    assert isinstance(read.images, RecordImages)
    assert read.captions == captions.captions
    assert read.image_paths == [f"image_{n}.{'png' if n % 3 == 0 else 'jpg'}" for n in range(7)]
    stored = list(read.images.rows(read.image_paths, training=False, seed=None))
    assert [int(element["row"]) for element in stored] == list(range(7))
    for element, path in zip(stored, captions.image_paths, strict=True):
        assert element["image_bytes"].numpy() == Path(path).read_bytes()


def test_labelled_round_trip_keeps_rows_labels_and_soft_answers(labelled, tmp_path):
    entry = write_shards(labelled, tmp_path / "shards", split="val")
    assert (entry["images"], entry["rows"]) == (4, 7)
    read = read_shards(shards_of(tmp_path / "shards", "val"))
    assert read.texts == labelled.texts
    assert read.labels == labelled.labels
    assert read.answer_lists == labelled.answer_lists
    assert [Path(path).name for path in labelled.image_paths] == read.image_paths


def test_manifest_records_counts_checksums_and_the_vocabulary_source(captions, tmp_path):
    folder = tmp_path / "shards"
    write_shards(captions, folder, split="train")
    write_shards(captions.subset([0, 1], ""), folder, split="val")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["splits"]) == {"train", "val"}
    assert manifest["splits"]["val"]["images"] == 2
    assert "training split" in manifest["vocabulary_source"]
    shard = manifest["splits"]["train"]["shards"][0]
    assert len(shard["sha256"]) == 64 and (folder / shard["file"]).stat().st_size == shard["bytes"]
    assert verify_shards(folder) == []
    with (folder / shard["file"]).open("r+b") as stream:
        stream.seek(40)
        stream.write(b"\x00corrupted")
    assert verify_shards(folder) == [
        f"{folder / shard['file']}: size or sha256 differs from the manifest"
    ]


def test_a_missing_shard_or_record_is_caught_by_the_manifest(captions, tmp_path):
    folder = tmp_path / "shards"
    entry = write_shards(captions, folder, shard_megabytes=0.002)
    last = folder / entry["shards"][-1]["file"]
    last.rename(last.with_suffix(".moved"))
    with pytest.raises(ValueError, match=f"1 of the {len(entry['shards'])} shards of the manifest"):
        read_shards(shards_of(folder))
    last.with_suffix(".moved").rename(last)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["splits"]["train"]["images"] = 8
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="lists 8 images and 13 texts, the shards hold 7 and 13"):
        read_shards(shards_of(folder))


def test_no_matching_files_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no TFRecord files match"):
        read_shards(str(tmp_path / "nothing-*.tfrecord"))


def test_pipeline_from_shards_equals_the_pipeline_from_files(labelled, tmp_path):
    write_shards(labelled, tmp_path / "shards", shard_megabytes=0.002)
    records = read_shards(shards_of(tmp_path / "shards"))

    def batches(examples):
        dataset = image_text_dataset(
            examples.image_paths,
            examples.texts,
            image_size=16,
            batch_size=3,
            batch_transform=lambda batch: (batch["image"], batch["text"], batch["label"]),
            training=False,
            extras={"label": np.arange(len(examples))},
            images=examples.images,
        )
        return [tuple(part.numpy() for part in batch) for batch in dataset]

    from_files, from_records = batches(labelled), batches(records)
    assert len(from_files) == len(from_records) == 3
    for file_batch, record_batch in zip(from_files, from_records, strict=True):
        for file_part, record_part in zip(file_batch, record_batch, strict=True):
            np.testing.assert_array_equal(file_part, record_part)


def test_training_stream_gives_every_row_once_per_epoch_in_a_new_order(labelled, tmp_path):
    write_shards(labelled, tmp_path / "shards", shard_megabytes=0.002)
    records = read_shards(shards_of(tmp_path / "shards"))
    stream = records.images.rows(records.image_paths, training=True, seed=3)
    epochs = [[int(element["row"]) for element in stream] for _ in range(3)]
    assert all(sorted(epoch) == list(range(7)) for epoch in epochs)
    assert len({tuple(epoch) for epoch in epochs}) > 1


def test_a_held_out_split_streams_only_its_own_images(captions, tmp_path):
    write_shards(captions, tmp_path / "shards", shard_megabytes=0.002)
    records = read_shards(shards_of(tmp_path / "shards"))
    rest, held_out = records.split(0.3, seed=0)
    assert isinstance(held_out.images, RecordImages)
    images = np.concatenate(
        list(
            image_dataset(held_out.image_paths, image_size=8, batch_size=4, images=held_out.images)
        )
    )
    by_file = {
        Path(path).name: path for path in captions.image_paths
    }  # the same images read from their files
    expected = np.concatenate(
        list(
            image_dataset(
                [by_file[key] for key in held_out.image_paths], image_size=8, batch_size=4
            )
        )
    )
    np.testing.assert_array_equal(images, expected)
    assert len(rest) + len(held_out) == 7


def test_convert_command_writes_every_shapes_split_and_verifies(tiny_shapes_world, tmp_path):
    env = {"MMZOO_DATA_DIR": str(tiny_shapes_world.parent), "PATH": ""}
    command = [sys.executable, str(ROOT / "convert_dataset.py")]
    converted = subprocess.run(
        [*command, "--task", "vqa", "--dataset", "shapes:48,8,8", "--output", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )  # fmt: skip
    assert converted.returncode == 0, converted.stderr[-2000:]
    assert "train: 48 images" in converted.stdout
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert set(manifest["splits"]) == {"train", "val", "test"}
    verified = subprocess.run(
        [*command, "--verify", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert verified.returncode == 0 and "every shard matches" in verified.stdout


@pytest.mark.parametrize("cache", ["off", "memory"])
def test_two_workers_each_read_their_own_shards_of_the_training_stream(captions, tmp_path, cache):
    """What MultiWorkerMirroredStrategy does to a dataset (AUTO policy: FILE when the
    source is files), applied to the training pipeline from shards."""
    from tensorflow.python.data.experimental.ops.distribute import _AutoShardDataset

    write_shards(captions, tmp_path / "shards", shard_megabytes=0.002)
    records = read_shards(shards_of(tmp_path / "shards"))
    paths, texts, _ = records.pairs()
    seen = []
    for worker in range(2):  # a dataset each, as each worker process builds its own (and cache)
        dataset = image_text_dataset(
            paths, texts, image_size=8, batch_size=1, batch_transform=lambda batch: batch["text"],
            training=True, seed=0, cache=cache, images=records.images,
        )  # fmt: skip
        sharded = _AutoShardDataset(dataset, num_workers=2, index=worker, num_replicas=2)
        seen.append(sorted(text.decode() for batch in sharded for text in batch.numpy()))
    assert seen[0] and seen[1] and not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(texts)
    # Whole shards: each worker has every caption of each image it reads.
    images_of = [{text.rsplit(" ", 1)[1] for text in worker} for worker in seen]
    assert not images_of[0] & images_of[1]
