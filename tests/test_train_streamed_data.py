"""train.py on data whose images are streamed: TFRecord shards and (mocked) TFDS."""

import numpy as np
import pytest
import tensorflow as tf

import train
from datasets.image_sources import RecordImages, TfdsImages
from datasets.pipeline import image_dataset
from datasets.sources import TASK_DATA, load_splits
from datasets.tfrecords import write_shards
from tests.datasets.test_tfds_source import _clevr, fake_tfds


@pytest.fixture(scope="module")
def vqa_shards(tiny_shapes_world, tmp_path_factory):
    folder = tmp_path_factory.mktemp("vqa_shards")
    for split in ("train", "val"):
        examples = TASK_DATA["vqa"].read_shapes(tiny_shapes_world, split)
        write_shards(examples, folder, split=split, shard_megabytes=0.01)
    return folder


def test_shards_without_a_val_split_hold_out_images_like_files_do(vqa_shards, tiny_shapes_world):
    splits = load_splits("vqa", str(vqa_shards / "train-*.tfrecord"), seed=0)
    from_files = TASK_DATA["vqa"].read_shapes(tiny_shapes_world, "train")
    assert all(isinstance(split.images, RecordImages) for split in splits.values())
    assert len(splits["train"]) + len(splits["val"]) == len(from_files)
    assert not set(splits["train"].image_paths) & set(splits["val"].image_paths)
    assert sorted(splits["train"].texts + splits["val"].texts) == sorted(from_files.texts)


def test_a_task_refuses_shards_of_the_other_kind(vqa_shards):
    with pytest.raises(ValueError, match="holds labelled pairs, which the captioning task"):
        load_splits("captioning", str(vqa_shards / "train-*.tfrecord"))


def test_tfds_splits_come_from_the_dataset_and_stream_each_image_once_per_row():
    with fake_tfds():
        splits = load_splits("vqa", "tfds:clevr")
        assert isinstance(splits["val"].images, TfdsImages)
        expected = _clevr("validation")
        questions = [row["question"] for example in expected for row in example["question_answer"]]
        assert splits["val"].texts == questions
        images = np.concatenate(
            list(
                image_dataset(
                    splits["val"].image_paths,
                    image_size=8,
                    batch_size=4,
                    images=splits["val"].images,
                )
            )
        )
    assert len(images) == len(questions)
    first = tf.image.resize(expected[0]["image"] / 255.0, (8, 8), antialias=True).numpy()
    np.testing.assert_allclose(images[0], first, atol=1e-5)
    # The rows of one image carry that image: image 2 has four questions.
    np.testing.assert_array_equal(images[-1], images[-2])


@pytest.mark.slow
def test_train_reads_shards_for_training_and_validation(vqa_shards, tmp_path):
    summary = train.run(
        train.parse_args(
            [
                "--model", "vqa",
                "--dataset", str(vqa_shards / "train-*.tfrecord"),
                "--val-dataset", str(vqa_shards / "val-*.tfrecord"),
                "--epochs", "1", "--batch-size", "8", "--no-export",
            ]
        )
    )  # fmt: skip
    assert summary["test_split"].endswith("val-*.tfrecord")
    assert np.isfinite(summary["metrics"]["vqa_accuracy"])


@pytest.mark.slow
def test_train_reads_a_tfds_dataset():
    with fake_tfds():
        summary = train.run(
            train.parse_args(
                ["--model", "show_and_tell", "--dataset", "tfds:coco_captions",
                 "--epochs", "1", "--batch-size", "4", "--beam-size", "1", "--no-export"]
            )
        )  # fmt: skip
    assert summary["test_split"] == "tfds:coco_captions:test"
    assert 0.0 <= summary["metrics"]["bleu_4"] <= 1.0
