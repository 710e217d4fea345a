"""Readers of user data (COCO captions JSON, CSV, JSONL) and dataset SPECs."""

import json
import re

import numpy as np
import pytest
from PIL import Image

import datasets
from datasets.checked_splits import checked_split
from datasets.coco_captions import read_coco_captions
from datasets.examples import CaptionExamples
from datasets.sources import load_caption_splits, parse_shapes_spec
from datasets.tabular import read_caption_table, read_rows
from datasets.validation import (
    DUPLICATE_ID,
    EMPTY_TEXT,
    MALFORMED_ROW,
    MISSING_FIELD,
    NOT_UTF8,
    UNKNOWN_ID,
    Problem,
)
from tests.datasets.test_checked_splits import skip_report


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
    "content, message",
    [
        ("{not json", "cannot read COCO captions JSON"),
        ("[]", "expected a JSON object with 'images' and 'annotations'"),
        ('{"images": []}', "missing list field 'annotations'"),
        ('{"images": [], "annotations": []}', "no rows"),
        ('{"images": [{"id": 1}], "annotations": []}', r"no usable row: 1 problems, the first"),
    ],
)
def test_coco_captions_whole_file_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "captions.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        read_coco_captions(path)
    assert str(error.value).startswith(f"{path}: ")


def coco_with_one_bad_entry(tmp_path, image=None, annotation=None):
    """Images a.jpg (id 1, two captions) and b.jpg (id 2), plus one bad entry."""
    for name in ("a.jpg", "b.jpg"):
        write_image(tmp_path / "annotations" / name)
    images = [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}]
    annotations = [
        {"id": 1, "image_id": 1, "caption": "a one"},
        {"id": 2, "image_id": 2, "caption": "b one"},
        {"id": 3, "image_id": 1, "caption": "a two"},
    ]
    images += [image] if image is not None else []
    annotations += [annotation] if annotation is not None else []
    return coco_json(tmp_path, images, annotations)


@pytest.mark.parametrize(
    "image, annotation, where, reason, detail",
    [
        (None, {"image_id": 2, "caption": "  "}, "annotations[3]", EMPTY_TEXT, "caption is '  '"),
        (None, {"image_id": 2}, "annotations[3]", MISSING_FIELD, "caption is None"),
        (None, {"image_id": 9, "caption": "x"}, "annotations[3]", UNKNOWN_ID, "image_id 9 names"),
        (None, "a caption", "annotations[3]", MALFORMED_ROW, "not an object: 'a caption'"),
        ({"id": 3}, None, "images[2]", MISSING_FIELD, "no valid 'file_name': None"),
        ({"id": 3, "file_name": "c.jpg"}, None, "images[2]", EMPTY_TEXT, "no usable caption of"),
    ],
)
def test_a_bad_coco_entry_is_reported_and_only_it_is_left_out(
    tmp_path, image, annotation, where, reason, detail
):
    path = coco_with_one_bad_entry(tmp_path, image, annotation)
    examples = read_coco_captions(path)
    assert [p.rsplit("/", 1)[1] for p in examples.image_paths] == ["a.jpg", "b.jpg"]
    assert examples.captions == [["a one", "a two"], ["b one"]]
    kept, report = skip_report(examples)
    assert kept.captions == examples.captions
    assert f"  {reason}: 1 (e.g. {path} {where})" in report
    with pytest.raises(ValueError, match=rf"{re.escape(f'{path} {where}')}: {reason}: {detail}"):
        checked_split(examples, "error")


def test_a_coco_image_left_with_no_caption_is_reported_after_its_captions(tmp_path):
    write_image(tmp_path / "annotations" / "a.jpg")
    images = [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}]
    annotations = [
        {"image_id": 2, "caption": ""},
        {"image_id": 1, "caption": "a one"},
        {"image_id": 2, "caption": " "},
    ]
    path = coco_json(tmp_path, images, annotations)
    examples = read_coco_captions(path)
    assert examples.captions == [["a one"]]
    assert [(problem.where, problem.reason) for problem in examples.problems] == [
        (f"{path} annotations[0]", EMPTY_TEXT),
        (f"{path} annotations[2]", EMPTY_TEXT),
        (f"{path} images[1]", EMPTY_TEXT),
    ]
    assert examples.problems[2].detail.endswith("b.jpg")


def test_a_coco_id_naming_two_files_leaves_out_the_id_and_its_captions(tmp_path):
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        write_image(tmp_path / "annotations" / name)
    images = [
        {"id": 7, "file_name": "a.jpg"},
        {"id": 8, "file_name": "c.jpg"},
        {"id": 7, "file_name": "b.jpg"},
        {"id": 8, "file_name": "c.jpg"},  # the same entry twice loses nothing
    ]
    annotations = [{"image_id": 7, "caption": "a or b?"}, {"image_id": 8, "caption": "c"}]
    path = coco_json(tmp_path, images, annotations)
    examples = read_coco_captions(path)
    assert [p.rsplit("/", 1)[1] for p in examples.image_paths] == ["c.jpg"]
    kept, report = skip_report(examples)
    assert (
        f"  {DUPLICATE_ID}: 3 (e.g. {path} images[0], {path} images[2], {path} annotations[0])"
        in report
    )
    with pytest.raises(
        ValueError, match=r"images\[0\]: duplicate id: id 7 names 2 different files"
    ):
        checked_split(examples, "error")


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


@pytest.mark.parametrize(
    "name, content, where, reason",
    [
        ("data.csv", "image,caption\na.jpg,ok\na.jpg,\nb.jpg,fine\n", "row 2", EMPTY_TEXT),
        ("data.csv", "image,caption\na.jpg,ok\n,orphan\nb.jpg,fine\n", "row 2", EMPTY_TEXT),
        ("data.csv", "image,caption\na.jpg,ok\na.jpg\nb.jpg,fine\n", "row 2", MISSING_FIELD),
        ("data.jsonl", '{"image": "a.jpg", "caption": "ok"}\n{"image": "a.jpg"}\n\n'
         '{"image": "b.jpg", "caption": "fine"}\n', "line 2", MISSING_FIELD),
        ("data.jsonl", '{"image": "a.jpg", "caption": "ok"}\n\n["a.jpg", "x"]\n'
         '{"image": "b.jpg", "caption": "fine"}\n', "line 3", MALFORMED_ROW),
        ("data.jsonl", '{"image": "a.jpg", "caption": "ok"}\n{"image": "a.jpg", "caption":\n'
         '{"image": "b.jpg", "caption": "fine"}\n', "line 2", MALFORMED_ROW),
    ],
)  # fmt: skip
def test_a_bad_table_row_is_reported_and_only_it_is_left_out(
    tmp_path, name, content, where, reason
):
    write_image(tmp_path / "a.jpg")
    write_image(tmp_path / "b.jpg")
    (tmp_path / name).write_text(content)
    examples = read_caption_table(tmp_path / name)
    assert examples.captions == [["ok"], ["fine"]]
    kept, report = skip_report(examples)
    assert f"  {reason}: 1 (e.g. {tmp_path / name} {where})" in report
    assert kept.captions == [["ok"], ["fine"]]
    with pytest.raises(ValueError, match=rf"{name} {where}: {reason}: "):
        checked_split(examples, "error")


def test_a_non_utf8_caption_leaves_out_only_that_caption(tmp_path):
    write_image(tmp_path / "a.jpg")
    (tmp_path / "data.csv").write_bytes(b"image,caption\na.jpg,caf\xe9\na.jpg,tea\n")
    examples = read_caption_table(tmp_path / "data.csv")
    assert examples.captions == [["tea"]]
    (problem,) = examples.problems
    assert problem == Problem(
        None,
        f"{tmp_path / 'data.csv'} row 1",
        NOT_UTF8,
        "caption: invalid UTF-8 byte e9 at character 3",
    )


def test_table_rows_and_whole_file_errors(tmp_path):
    write_image(tmp_path / "a.jpg")
    (tmp_path / "bad.csv").write_text("image,caption\na.jpg,ok\na.jpg,\n")
    rows, problems = read_rows(tmp_path / "bad.csv", ("image", "caption"))
    assert [row["caption"] for row in rows] == ["ok"]
    assert rows[0]["image"] == str((tmp_path / "a.jpg").resolve())
    assert problems == [
        Problem(None, f"{tmp_path / 'bad.csv'} row 2", EMPTY_TEXT, "column 'caption' is ''")
    ]
    (tmp_path / "header.csv").write_text("image,text\na.jpg,ok\n")
    with pytest.raises(ValueError, match=r"header.csv: the header has no column 'caption' \("):
        read_caption_table(tmp_path / "header.csv")
    (tmp_path / "blank.jsonl").write_text('{"image": "a.jpg", "caption": " "}\n')
    with pytest.raises(ValueError, match=r"blank.jsonl: no usable row: .*blank.jsonl line 1"):
        read_caption_table(tmp_path / "blank.jsonl")


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
