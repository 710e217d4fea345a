"""Readers of user data (COCO captions JSON, CSV, JSONL) and dataset SPECs."""

import json

import numpy as np
import pytest
from PIL import Image

import datasets
from datasets.checked_splits import checked_split
from datasets.coco_captions import read_coco_captions
from datasets.examples import CaptionExamples
from datasets.sources import load_caption_splits, parse_shapes_spec
from datasets.tabular import read_caption_table, read_rows


def write_image(path, size=(20, 10), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size).save(path)
    return path


def test_import_datasets_resolves_to_this_project():
    assert datasets.__file__.endswith("datasets/__init__.py")
    assert hasattr(__import__("datasets.shapes").shapes, "ensure_shapes_world")


def coco_json(tmp_path, images, annotations):
    path = tmp_path / "annotations" / "captions.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return path


def test_coco_captions_resolve_images_relative_to_the_json(tmp_path):
    write_image(tmp_path / "annotations" / "pics" / "a.jpg")
    write_image(tmp_path / "annotations" / "pics" / "b.png")
    path = coco_json(
        tmp_path,
        [{"id": 7, "file_name": "pics/a.jpg"}, {"id": 9, "file_name": "pics/b.png"}],
        [
            {"id": 1, "image_id": 9, "caption": "b one"},
            {"id": 2, "image_id": 7, "caption": " a one "},
            {"id": 3, "image_id": 9, "caption": "b two"},
        ],
    )
    examples = read_coco_captions(path)
    assert examples.image_paths == [
        str((tmp_path / "annotations" / "pics" / name).resolve()) for name in ("a.jpg", "b.png")
    ]
    assert examples.captions == [["a one"], ["b one", "b two"]]


def test_coco_captions_with_image_dir(tmp_path):
    write_image(tmp_path / "elsewhere" / "a.jpg")
    path = coco_json(
        tmp_path, [{"id": 1, "file_name": "a.jpg"}], [{"id": 1, "image_id": 1, "caption": "x"}]
    )
    examples = read_coco_captions(path, image_dir=tmp_path / "elsewhere")
    assert examples.image_paths == [str((tmp_path / "elsewhere" / "a.jpg").resolve())]


@pytest.mark.parametrize(
    "images, annotations, message",
    [
        ([{"id": 1, "file_name": "a.jpg"}], [{"id": 1, "image_id": 2, "caption": "x"}], "unknown"),
        ([{"id": 1, "file_name": "a.jpg"}], [{"id": 1, "image_id": 1, "caption": " "}], "empty"),
        ([{"id": 1, "file_name": "a.jpg"}], [], "no caption"),
        ([{"id": 1}], [], "file_name"),
    ],
)
def test_coco_captions_errors_name_the_file_and_field(tmp_path, images, annotations, message):
    write_image(tmp_path / "annotations" / "a.jpg")
    path = coco_json(tmp_path, images, annotations)
    with pytest.raises(ValueError, match=message) as error:
        read_coco_captions(path)
    assert str(path) in str(error.value)


def test_a_missing_coco_image_is_left_to_the_validation_pass(tmp_path):
    write_image(tmp_path / "annotations" / "a.jpg")
    images = [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "missing.jpg"}]
    annotations = [{"id": n, "image_id": n, "caption": "x"} for n in (1, 2)]
    examples = read_coco_captions(coco_json(tmp_path, images, annotations))
    with pytest.raises(ValueError, match=r"row 1: .*missing.jpg: missing file"):
        checked_split(examples, "error")
    assert len(checked_split(examples, "skip", lambda message: None)) == 1


def test_csv_and_jsonl_tables_group_captions_by_image(tmp_path):
    write_image(tmp_path / "a.jpg")
    write_image(tmp_path / "b.jpg")
    (tmp_path / "data.csv").write_text("image,caption\na.jpg,first\nb.jpg,second\na.jpg,third\n")
    (tmp_path / "data.jsonl").write_text(
        "\n".join(
            json.dumps(row)
            for row in [
                {"image": "a.jpg", "caption": "first"},
                {"image": "b.jpg", "caption": "second"},
                {"image": "a.jpg", "caption": "third"},
            ]
        )
    )
    for name in ("data.csv", "data.jsonl"):
        examples = read_caption_table(tmp_path / name)
        assert [p.rsplit("/", 1)[1] for p in examples.image_paths] == ["a.jpg", "b.jpg"]
        assert examples.captions == [["first", "third"], ["second"]]


def test_table_errors_name_row_and_column(tmp_path):
    write_image(tmp_path / "a.jpg")
    (tmp_path / "bad.csv").write_text("image,caption\na.jpg,ok\na.jpg,\n")
    with pytest.raises(ValueError, match=r"bad.csv: row 2 has no value in column 'caption'"):
        read_rows(tmp_path / "bad.csv", ("image", "caption"))
    (tmp_path / "bad.jsonl").write_text('{"image": "a.jpg"}\n')
    with pytest.raises(ValueError, match="column 'caption'"):
        read_caption_table(tmp_path / "bad.jsonl")


def test_split_holds_out_whole_images_deterministically():
    examples = CaptionExamples(
        [f"/img/{i}.jpg" for i in range(20)], [[f"c{i}a", f"c{i}b"] for i in range(20)], "x"
    )
    train, held_out = examples.split(0.25, seed=3)
    assert len(train) == 15 and len(held_out) == 5
    assert not set(train.image_paths) & set(held_out.image_paths)
    assert held_out.image_paths == examples.split(0.25, seed=3)[1].image_paths
    assert held_out.image_paths != examples.split(0.25, seed=4)[1].image_paths


def test_pairs_flatten_every_caption():
    examples = CaptionExamples(["/a", "/b"], [["x", "y"], ["z"]], "t")
    assert examples.pairs() == (["/a", "/a", "/b"], ["x", "y", "z"], [0, 0, 1])


def test_shapes_spec_parsing():
    assert parse_shapes_spec("shapes")["train"] >= 500
    assert parse_shapes_spec("shapes:10,2,3") == {"train": 10, "val": 2, "test": 3}
    assert parse_shapes_spec("data.json") is None
    with pytest.raises(ValueError, match="shapes:1,2"):
        parse_shapes_spec("shapes:1,2")


def test_user_file_without_val_holds_out_part_of_train(tmp_path):
    rows = []
    for index in range(10):
        write_image(tmp_path / f"{index}.png")
        rows.append(f"{index}.png,caption {index}")
    (tmp_path / "train.csv").write_text("image,caption\n" + "\n".join(rows) + "\n")
    splits = load_caption_splits(str(tmp_path / "train.csv"), seed=0)
    assert len(splits["train"]) == 9 and len(splits["val"]) == 1
    assert splits["test"] is splits["val"]


def test_unknown_dataset_suffix_is_a_clear_error(tmp_path):
    (tmp_path / "data.xml").write_text("<x/>")
    with pytest.raises(ValueError, match="Unsupported dataset"):
        load_caption_splits(str(tmp_path / "data.xml"))
    with pytest.raises(ValueError, match="not found"):
        load_caption_splits(str(tmp_path / "nothing.json"))


def test_shapes_spec_reads_the_generated_world(tiny_shapes_world, monkeypatch):
    monkeypatch.setenv("MMZOO_DATA_DIR", str(tiny_shapes_world.parent))
    splits = load_caption_splits("shapes:48,8,8")
    assert {split: len(examples) for split, examples in splits.items()} == {
        "train": 48,
        "val": 8,
        "test": 8,
    }
    assert all(len(captions) == 5 for captions in splits["train"].captions)
    assert np.all([path.startswith(str(tiny_shapes_world)) for path in splits["test"].image_paths])
