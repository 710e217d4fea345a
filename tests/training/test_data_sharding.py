"""Auto-shard policies: which sources shard by file, and what two workers then read.

The two workers are TensorFlow's own auto-shard rewrite (what
MultiWorkerMirroredStrategy applies to each worker's dataset), run on a dataset
built once per worker, as each worker process builds its own.
"""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.data.experimental.ops.distribute import _AutoShardDataset

from datasets.image_sources import FILES, RecordImages
from datasets.pipeline import image_text_dataset
from datasets.sources import TASK_DATA
from datasets.tfrecords import read_shards, write_shards
from training.data_sharding import AutoShardPolicy, shard_policy_for, with_shard_policy

WORKERS = 2


@pytest.fixture(scope="module")
def examples(tiny_shapes_world):
    """The tiny shapes world's captioning training split, read from its image files."""
    return TASK_DATA["captioning"].read_shapes(tiny_shapes_world, "train")


@pytest.fixture(scope="module")
def records(examples, tmp_path_factory):
    """The same split as TFRecord shards of a few images each."""
    folder = tmp_path_factory.mktemp("shards")
    entry = write_shards(examples, folder, shard_megabytes=0.01)
    assert len(entry["shards"]) >= 2 * WORKERS, entry["shards"]
    return read_shards(str(folder / "train-*.tfrecord"))


def test_tfrecord_shards_shard_by_file_and_everything_else_by_data(records, examples):
    spec = records.images.files[0].rsplit("-", 3)[0] + "-*.tfrecord"
    assert shard_policy_for(spec) == AutoShardPolicy.FILE
    assert shard_policy_for(records.images) == AutoShardPolicy.FILE
    assert shard_policy_for(records) == AutoShardPolicy.FILE
    for other in ("shapes", "captions.json", "pairs.csv", "tfds:coco_captions", examples, FILES):
        assert shard_policy_for(other) == AutoShardPolicy.DATA, other


def test_fewer_shards_than_workers_fall_back_to_data(records):
    files = len(records.images.files)
    assert shard_policy_for(records, num_workers=files) == AutoShardPolicy.FILE
    assert shard_policy_for(records, num_workers=files + 1) == AutoShardPolicy.DATA
    assert shard_policy_for(RecordImages(records.images.files[:1]), 2) == AutoShardPolicy.DATA


def test_a_shard_glob_that_matches_nothing_is_named(tmp_path):
    with pytest.raises(ValueError, match="no TFRecord files match"):
        shard_policy_for(str(tmp_path / "missing-*.tfrecord"))


def test_with_shard_policy_sets_the_policy_and_data_sets_a_deterministic_order():
    dataset = tf.data.Dataset.range(4)
    unordered = tf.data.Options()
    unordered.deterministic = False
    dataset = dataset.with_options(unordered)
    by_file = with_shard_policy(dataset, AutoShardPolicy.FILE).options()
    assert by_file.experimental_distribute.auto_shard_policy == AutoShardPolicy.FILE
    assert by_file.deterministic is False
    by_data = with_shard_policy(dataset, AutoShardPolicy.DATA).options()
    assert by_data.experimental_distribute.auto_shard_policy == AutoShardPolicy.DATA
    assert by_data.deterministic is True


def worker_rows(make_dataset, policy) -> list[list[int]]:
    """The rows each of WORKERS workers trains on: one dataset per worker, rewritten
    by TensorFlow's auto-sharding under `policy`."""
    seen = []
    for worker in range(WORKERS):
        dataset = with_shard_policy(make_dataset(), policy)
        sharded = _AutoShardDataset(
            dataset, num_workers=WORKERS, index=worker, num_replicas=WORKERS
        )
        seen.append(sorted(int(row) for batch in sharded for row in batch.numpy()))
    return seen


def training_stream(examples):
    """The training pipeline, one row per batch, in train.py's default faster order
    (deterministic=False); each batch is the row numbers of its examples."""
    paths, texts, _ = examples.pairs()
    rows = {"row": np.arange(len(paths))}
    return lambda: image_text_dataset(
        paths, texts, image_size=8, batch_size=1, batch_transform=lambda batch: batch["row"],
        training=True, seed=0, extras=rows, images=examples.images, deterministic=False,
    )  # fmt: skip


def assert_split_between_workers(seen: list[list[int]], rows: int) -> None:
    assert all(seen) and not set(seen[0]) & set(seen[1]), seen
    assert sorted(seen[0] + seen[1]) == list(range(rows))


def test_file_policy_gives_each_worker_whole_shards_of_its_own(records):
    paths, _, _ = records.pairs()
    seen = worker_rows(training_stream(records), AutoShardPolicy.FILE)
    assert_split_between_workers(seen, len(paths))
    # Whole files: the rows of an image (each of its captions) go to the worker reading it.
    images = [{paths[row] for row in worker} for worker in seen]
    assert not images[0] & images[1]


def test_data_policy_gives_each_worker_disjoint_elements_of_an_image_file_stream(examples):
    paths, _, _ = examples.pairs()
    seen = worker_rows(training_stream(examples), AutoShardPolicy.DATA)
    assert_split_between_workers(seen, len(paths))
    assert abs(len(seen[0]) - len(seen[1])) <= 1


def test_file_policy_cannot_shard_an_image_file_stream(examples):
    """Why image files named in memory need DATA: their source is a range of row numbers."""
    with pytest.raises(tf.errors.NotFoundError, match="unshardable source dataset"):
        worker_rows(training_stream(examples), AutoShardPolicy.FILE)
