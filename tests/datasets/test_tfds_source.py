"""TFDS sources: spec parsing, the mapping of each supported dataset, the metadata pass.

TFDS's random mock generator cannot fill these datasets' Sequence-of-text
features (it draws each sub-feature's length separately), so each test feeds
hand-made examples through `tfds.testing.mock_data(as_dataset_fn=...)`, encoded
and decoded by the dataset's own TFDS features: what the stream sees has the
dtypes and shapes of the real dataset. Nothing is downloaded.
"""

import contextlib

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from datasets.tfds_source import (
    TFDS_DATASETS,
    TfdsCaptionTexts,
    TfdsLabelledTexts,
    TfdsSpec,
    load_tfds,
    map_clevr,
    map_coco_captions,
    parse_tfds_spec,
    read_tfds_texts,
)


def _image(seed: int, height: int = 6, width: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _coco(split: str) -> list[dict]:
    base = {"train": 100, "val": 200, "test": 300, "restval": 400}[split]
    return [
        {
            "image": _image(base + index, height=6 + index),
            "image/id": base + index,
            "captions": [{"text": f"{split} image {index} caption {n}"} for n in range(5 + index)],
        }
        for index in range(3)
    ]


def _clevr(split: str) -> list[dict]:
    return [
        {
            "image": _image(index, width=8 + index),
            "file_name": f"CLEVR_{split}_{index:06d}.png",
            "question_answer": [
                {"question": f"{split} question {n} about {index}?", "answer": f"answer {n}"}
                for n in range(2 + index)
            ],
        }
        for index in range(3)
    ]


FAKE_EXAMPLES = {"coco_captions": _coco, "clevr": _clevr}


def _restrict(example, features):
    """Keeps the parts of `example` that the (partially decoded) `features` hold."""
    if isinstance(features, tfds.features.FeaturesDict):
        return {key: _restrict(example[key], features[key]) for key in features.keys()}
    if isinstance(features, tfds.features.Sequence):
        return [_restrict(item, features.feature) for item in example]
    return example


def _plain(value):
    """Encoded TFDS text comes as 0-d object arrays; tf.data wants plain Python strings."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray) and value.dtype == object:
        return value.tolist()
    return value


@contextlib.contextmanager
def fake_tfds(make_examples=None):
    """Mocks TFDS; yields the log of reads as (dataset name, split, feature names read)."""
    reads = []

    def as_dataset(builder, split, decoders=None, read_config=None, shuffle_files=False):
        features, decoders = builder.info.features, decoders
        if isinstance(decoders, tfds.decode.PartialDecoding):
            features, decoders = decoders.extract_features(features), decoders.decoders
        reads.append((builder.name, str(split), sorted(features.keys())))
        make = make_examples or FAKE_EXAMPLES[builder.name]
        encoded = [
            _plain(features.encode_example(_restrict(ex, features))) for ex in make(str(split))
        ]
        signature = tf.nest.map_structure(
            lambda info: tf.TensorSpec(info.shape, info.dtype), features.get_serialized_info()
        )
        stream = tf.data.Dataset.from_generator(lambda: iter(encoded), output_signature=signature)
        return stream.map(lambda ex: features.decode_example(ex, decoders=decoders))

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        yield reads


def _rows(stream: tf.data.Dataset) -> list[dict]:
    return list(stream.as_numpy_iterator())


def test_every_registered_dataset_has_fake_examples():
    assert sorted(FAKE_EXAMPLES) == sorted(TFDS_DATASETS)


@pytest.mark.parametrize("name", sorted(TFDS_DATASETS))
def test_stream_fields_dtypes_and_decodable_images(name):
    entry = TFDS_DATASETS[name]
    with fake_tfds():
        stream = load_tfds(f"tfds:{name}", "train")
        rows = _rows(stream)
    spec = stream.element_spec
    assert spec["image_bytes"] == tf.TensorSpec([], tf.string)
    assert spec["image_key"] == tf.TensorSpec([], tf.string)
    assert spec["image_id"].shape == []
    if entry.label_field is None:
        assert spec[entry.text_field] == tf.TensorSpec([None], tf.string)
    else:
        assert spec[entry.text_field] == tf.TensorSpec([], tf.string)
        assert spec[entry.label_field] == tf.TensorSpec([], tf.string)
    images = [tf.io.decode_image(row["image_bytes"], channels=3) for row in rows]
    assert all(image.dtype == tf.uint8 and image.shape[-1] == 3 for image in images)


def test_coco_captions_keep_every_caption_of_each_image():
    with fake_tfds():
        rows = _rows(load_tfds("tfds:coco_captions", "val", task="captioning"))
    expected = _coco("val")
    assert [row["image_id"] for row in rows] == [ex["image/id"] for ex in expected]
    assert rows[0]["image_id"].dtype == np.int64
    for row, example in zip(rows, expected, strict=True):
        assert [text.decode() for text in row["captions"]] == [
            caption["text"] for caption in example["captions"]
        ]
        image = tf.io.decode_image(row["image_bytes"], channels=3)
        assert image.shape == example["image"].shape
    assert rows[1]["image_key"].decode() == "tfds:coco_captions/2014#201"


def test_clevr_gives_one_row_per_question_with_its_image():
    with fake_tfds():
        rows = _rows(load_tfds("tfds:clevr", "train", task="vqa"))
    expected = _clevr("train")
    assert len(rows) == sum(len(ex["question_answer"]) for ex in expected)
    flat = [(ex, qa) for ex in expected for qa in ex["question_answer"]]
    for row, (example, qa) in zip(rows, flat, strict=True):
        assert row["question"].decode() == qa["question"]
        assert row["answer"].decode() == qa["answer"]
        assert row["image_id"].decode() == example["file_name"]
        assert row["image_key"].decode() == f"tfds:clevr#{example['file_name']}"
        assert tf.io.decode_image(row["image_bytes"]).shape == example["image"].shape


@pytest.mark.parametrize("name", sorted(TFDS_DATASETS))
def test_metadata_pass_matches_the_stream_and_reads_no_image(name):
    entry = TFDS_DATASETS[name]
    with fake_tfds() as reads:
        rows = _rows(load_tfds(f"tfds:{name}", "val"))
        texts = read_tfds_texts(f"tfds:{name}", "val")
    assert "image" in reads[0][2]
    assert "image" not in reads[1][2]
    assert texts.image_keys == [row["image_key"].decode() for row in rows]
    if entry.label_field is None:
        assert isinstance(texts, TfdsCaptionTexts)
        assert texts.captions == [[t.decode() for t in row["captions"]] for row in rows]
    else:
        assert isinstance(texts, TfdsLabelledTexts)
        assert texts.texts == [row[entry.text_field].decode() for row in rows]
        assert texts.labels == [row[entry.label_field].decode() for row in rows]
    split = entry.default_splits["val"]
    assert texts.source == f"tfds:{name}:{split}"
    assert len(texts) == len(rows)


@pytest.mark.parametrize(
    "spec, role, read",
    [
        ("tfds:coco_captions", "train", "train"),
        ("tfds:coco_captions", "val", "val"),
        ("tfds:coco_captions", "test", "test"),
        ("tfds:coco_captions/2014:restval", "train", "restval"),
        ("tfds:clevr", "val", "validation"),
        ("tfds:clevr", "test", "validation"),
        ("tfds:clevr:train[:2]", "val", "train[:2]"),
    ],
)
def test_each_role_reads_its_default_split_unless_the_spec_names_one(spec, role, read):
    with fake_tfds() as reads:
        read_tfds_texts(spec, role)
    assert reads[0][1] == read


def test_withheld_labels_are_refused():
    with pytest.raises(ValueError, match="'test' has no labels"):
        load_tfds("tfds:clevr:test", "test")


def test_a_task_the_dataset_does_not_serve_is_refused():
    with pytest.raises(ValueError, match="clevr.*serves vqa, not 'captioning'"):
        load_tfds("tfds:clevr", "train", task="captioning")


def test_an_unknown_role_is_refused():
    with pytest.raises(ValueError, match="Unknown split 'validation'.*'train', 'val', 'test'"):
        load_tfds("tfds:clevr", "validation")


def test_an_empty_split_is_refused():
    with fake_tfds(lambda split: []), pytest.raises(ValueError, match="holds no examples"):
        read_tfds_texts("tfds:coco_captions", "val")


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("tfds:coco_captions", TfdsSpec("coco_captions", None, None)),
        ("tfds:coco_captions/2014", TfdsSpec("coco_captions", "2014", None)),
        (
            "tfds:coco_captions/2014:train+restval",
            TfdsSpec("coco_captions", "2014", "train+restval"),
        ),
        ("tfds:clevr:validation[:10%]", TfdsSpec("clevr", None, "validation[:10%]")),
    ],
)
def test_spec_parsing(spec, expected):
    assert parse_tfds_spec(spec) == expected


@pytest.mark.parametrize(
    "spec, message",
    [
        ("coco_captions", "expected tfds:NAME"),
        ("tfds:", "expected tfds:NAME"),
        ("tfds:Coco", "expected tfds:NAME"),
        ("tfds:mnist", "'mnist' is not supported.*coco_captions.*clevr.*need a mapping"),
        ("tfds:coco_captions/2017", "no config '2017'.*'2014'"),
        ("tfds:clevr/v1", "no config 'v1'"),
        ("tfds:clevr:val", "split 'val' is not one of clevr's splits"),
        ("tfds:coco_captions:train+valid[:5]", "split 'valid\\[:5\\]'"),
    ],
)
def test_spec_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_tfds_spec(spec)


def test_pure_mappings_leave_out_the_image_when_it_is_not_read():
    coco = map_coco_captions({"image/id": tf.constant(7, tf.int64), "captions": {"text": ["a"]}})
    assert sorted(coco) == ["captions", "image_id"]
    clevr = map_clevr(
        {
            "image": tf.constant(b"png"),
            "file_name": tf.constant("f.png"),
            "question_answer": {"question": tf.constant(["q1", "q2"]), "answer": ["a1", "a2"]},
        }
    )
    assert clevr["image_bytes"].numpy().tolist() == [b"png", b"png"]
    assert clevr["image_id"].numpy().tolist() == [b"f.png", b"f.png"]


@pytest.mark.parametrize("read", [load_tfds, read_tfds_texts])
def test_missing_data_says_where_it_looked_and_what_to_do(read, tmp_path):
    with pytest.raises(ValueError) as error:
        read("tfds:coco_captions", "train", data_dir=tmp_path)
    message = str(error.value)
    for needed in (
        "'coco_captions' is not prepared",
        str(tmp_path),
        "tfds build coco_captions",
        "--tfds-data-dir",
        "TFDS_DATA_DIR",
    ):
        assert needed in message


def test_without_a_data_dir_the_tfds_data_dir_variable_is_where_it_looks(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(ValueError, match=f"'clevr' is not prepared in {tmp_path} "):
        read_tfds_texts("tfds:clevr", "val")
