"""Labelled (image, text, label) data: LabelledPairs, CSV/JSONL tables, labelled splits."""

import json

import pytest
from PIL import Image

from datasets.checked_splits import checked_split
from datasets.labelled_pairs import LabelledPairs
from datasets.sources import TASK_DATA, load_splits
from datasets.tabular import read_labelled_table
from datasets.validation import EMPTY_TEXT, MALFORMED_ROW, MISSING_FIELD


def write_image(path, size=(12, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size).save(path)
    return path


def write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


def pairs_of(images, per_image=2, source="pairs"):
    paths = [f"/img/{index}.jpg" for index in range(images) for _ in range(per_image)]
    texts = [f"text {index}" for index in range(len(paths))]
    labels = ["yes" if index % 2 else "no" for index in range(len(paths))]
    return LabelledPairs(paths, texts, labels, source)


def labelled_files(tmp_path, images=10, per_image=2, columns=("text", "label"), name="train"):
    """A CSV and a JSONL file of the same rows, with their images next to them."""
    rows = []
    for index in range(images):
        write_image(tmp_path / "pics" / f"{index}.png")
        for repeat in range(per_image):
            rows.append(
                {
                    "image": f"pics/{index}.png",
                    columns[0]: f"text {index} {repeat}",
                    columns[1]: str(repeat),
                }
            )
    header = ",".join(["image", *columns])
    lines = [",".join(row[column] for column in ["image", *columns]) for row in rows]
    csv_path = tmp_path / f"{name}.csv"
    csv_path.write_text(header + "\n" + "\n".join(lines) + "\n")
    return csv_path, write_jsonl(tmp_path / f"{name}.jsonl", rows)


# LabelledPairs


@pytest.mark.parametrize(
    "paths, texts, labels",
    [(["/a", "/b"], ["x"], ["1", "2"]), (["/a"], ["x"], []), ([], ["x"], ["1"])],
)
def test_labelled_pairs_need_one_of_each_per_example(paths, texts, labels):
    with pytest.raises(ValueError, match="my.csv") as error:
        LabelledPairs(paths, texts, labels, "my.csv")
    message = str(error.value)
    assert f"{len(paths)} images" in message and f"{len(labels)} labels" in message


def test_labelled_pairs_summary_counts_examples_and_images():
    pairs = pairs_of(images=3, per_image=2, source="data.jsonl")
    assert len(pairs) == 6
    assert pairs.summary() == "6 examples of 3 images from data.jsonl"


def test_split_keeps_all_examples_of_an_image_on_one_side():
    pairs = pairs_of(images=20, per_image=3)
    rest, held_out = pairs.split(0.25, seed=1)
    assert not set(rest.image_paths) & set(held_out.image_paths)
    assert len(set(held_out.image_paths)) == 5 and len(set(rest.image_paths)) == 15
    assert len(rest) == 45 and len(held_out) == 15
    assert rest.source == "pairs (train part)" and held_out.source == "pairs (held-out part)"
    original = set(zip(pairs.image_paths, pairs.texts, pairs.labels, strict=True))
    for part in (rest, held_out):
        assert set(zip(part.image_paths, part.texts, part.labels, strict=True)) <= original
    assert held_out.image_paths == pairs.split(0.25, seed=1)[1].image_paths
    assert held_out.image_paths != pairs.split(0.25, seed=2)[1].image_paths


def test_split_holds_out_at_least_one_image():
    rest, held_out = pairs_of(images=2).split(0.1, seed=0)
    assert len(set(held_out.image_paths)) == 1 and len(set(rest.image_paths)) == 1


@pytest.mark.parametrize("images, fraction", [(1, 0.1), (2, 0.9), (3, 1.0)])
def test_split_with_too_few_images_raises(images, fraction):
    with pytest.raises(ValueError, match=rf"pairs: {images} images are too few"):
        pairs_of(images=images).split(fraction, seed=0)


# read_labelled_table


def test_csv_and_jsonl_read_the_same_examples(tmp_path):
    csv_path, jsonl_path = labelled_files(tmp_path, images=3)
    from_csv = read_labelled_table(csv_path, "text", "label")
    from_jsonl = read_labelled_table(jsonl_path, "text", "label")
    expected_paths = [str((tmp_path / "pics" / f"{i}.png").resolve()) for i in range(3)]
    assert from_csv.image_paths == [path for path in expected_paths for _ in range(2)]
    assert from_csv.texts == [f"text {i} {r}" for i in range(3) for r in range(2)]
    assert from_csv.labels == ["0", "1"] * 3
    assert from_csv.source == str(csv_path)
    for field in ("image_paths", "texts", "labels"):
        assert getattr(from_csv, field) == getattr(from_jsonl, field)


def test_labels_are_read_as_stripped_strings(tmp_path):
    write_image(tmp_path / "a.png")
    (tmp_path / "data.csv").write_text("image,text,label\na.png, one ,1\na.png,two, 2 \n")
    path = write_jsonl(
        tmp_path / "data.jsonl",
        [
            {"image": "a.png", "text": "one", "label": 1},
            {"image": "a.png", "text": "two", "label": 2.5},
            {"image": "a.png", "text": "three", "label": True},
        ],
    )
    from_csv = read_labelled_table(tmp_path / "data.csv", "text", "label")
    assert from_csv.labels == ["1", "2"] and from_csv.texts == ["one", "two"]
    assert read_labelled_table(path, "text", "label").labels == ["1", "2.5", "True"]


def test_other_text_and_label_columns(tmp_path):
    _, jsonl_path = labelled_files(tmp_path, images=2, columns=("question", "answer"))
    pairs = read_labelled_table(jsonl_path, "question", "answer")
    assert pairs.texts[0] == "text 0 0" and pairs.labels[:2] == ["0", "1"]


@pytest.mark.parametrize(
    "name, content, where, reason, detail",
    [
        ("empty.csv", "image,text,label\na.png,hi,x\na.png,  ,x\n", "row 2", EMPTY_TEXT,
         "column 'text' is '  '"),
        ("noimage.csv", "image,text,label\na.png,hi,x\n,hi,y\n", "row 2", EMPTY_TEXT,
         "column 'image' is ''"),
        ("nolabel.csv", "image,text,label\na.png,hi,x\na.png,hi,\n", "row 2", EMPTY_TEXT,
         "column 'label' is ''"),
        ("short.csv", "image,text,label\na.png,hi,x\na.png,hi\n", "row 2", MISSING_FIELD,
         "no value in column 'label'"),
        ("missing.jsonl", '{"image": "a.png", "text": "hi", "label": "x"}\n{"image": "a.png"}\n',
         "line 2", MISSING_FIELD, "no value in column 'text'"),
        ("null.jsonl", '{"image": "a.png", "text": "hi", "label": "x"}\n\n'
         '{"image": "a.png", "text": "hi", "label": null}\n', "line 3", MISSING_FIELD,
         "no value in column 'label'"),
        ("list.jsonl", '{"image": "a.png", "text": "hi", "label": "x"}\n["a.png", "hi", "x"]\n',
         "line 2", MALFORMED_ROW, "not an object"),
    ],
)  # fmt: skip
def test_a_bad_row_is_reported_by_file_row_and_column(
    tmp_path, name, content, where, reason, detail
):
    write_image(tmp_path / "a.png")
    (tmp_path / name).write_text(content)
    pairs = read_labelled_table(tmp_path / name, "text", "label")
    assert (pairs.texts, pairs.labels) == (["hi"], ["x"])
    printed = []
    kept = checked_split(pairs, "skip", printed.append)
    assert kept.labels == ["x"] and f"  {reason}: 1 (e.g. {tmp_path / name} {where})" in printed[0]
    with pytest.raises(ValueError, match=rf"{name} {where}: {reason}: {detail}"):
        checked_split(pairs, "error")


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("empty.csv", "image,text,label\n", "empty.csv: no rows"),
        ("empty.jsonl", "\n\n", "empty.jsonl: no rows"),
        ("missing.csv", "image,text\na.png,hello\n", "missing.csv: the header has no column 'l"),
        ("list.jsonl", '["a.png", "hi", "x"]\n', "list.jsonl: no usable row: .*1: malformed"),
        ("broken.jsonl", '{"image": "a.png",\n', "broken.jsonl: no usable row: .*: not JSON"),
    ],
)  # fmt: skip
def test_unreadable_tables_name_the_file(tmp_path, name, content, match):
    write_image(tmp_path / "a.png")
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=match):
        read_labelled_table(tmp_path / name, "text", "label")


def test_missing_image_file_is_named(tmp_path):
    (tmp_path / "data.csv").write_text("image,text,label\nnowhere.png,hi,x\n")
    with pytest.raises(ValueError, match=r"data.csv: none of its 1 image files .*nowhere.png"):
        checked_split(read_labelled_table(tmp_path / "data.csv", "text", "label"), "error")


def test_image_paths_resolve_relative_to_image_dir(tmp_path):
    write_image(tmp_path / "elsewhere" / "a.png")
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "data.csv").write_text("image,text,label\na.png,hi,x\n")
    with pytest.raises(ValueError, match="give --image-dir"):
        checked_split(read_labelled_table(tmp_path / "meta" / "data.csv", "text", "label"), "error")
    pairs = read_labelled_table(
        tmp_path / "meta" / "data.csv", "text", "label", image_dir=tmp_path / "elsewhere"
    )
    assert pairs.image_paths == [str((tmp_path / "elsewhere" / "a.png").resolve())]


# load_splits on user files


@pytest.mark.parametrize("task, columns", [("classification", ("text", "label")),
                                           ("vqa", ("question", "answer"))])  # fmt: skip
@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_without_a_val_file_val_is_held_out_by_image(tmp_path, task, columns, suffix):
    paths = labelled_files(tmp_path, images=10, per_image=2, columns=columns)
    path = paths[0] if suffix == "csv" else paths[1]
    splits = load_splits(task, str(path), seed=0)
    assert set(splits) == {"train", "val", "test"}
    assert len(splits["train"]) == 18 and len(splits["val"]) == 2
    assert len(set(splits["val"].image_paths)) == 1
    assert not set(splits["train"].image_paths) & set(splits["val"].image_paths)
    assert splits["test"] is splits["val"]
    assert splits["train"].texts[0].startswith("text ")


def test_val_and_test_files_are_used_when_given(tmp_path):
    train, _ = labelled_files(tmp_path, images=6, name="train")
    _, val = labelled_files(tmp_path, images=3, per_image=1, name="val")
    _, test = labelled_files(tmp_path, images=4, per_image=1, name="test")
    splits = load_splits("classification", str(train), str(val), str(test))
    assert len(splits["train"]) == 12  # nothing held out
    assert len(splits["val"]) == 3 and splits["val"].source == str(val)
    assert len(splits["test"]) == 4 and splits["test"].source == str(test)
    held_out = load_splits("classification", str(train), test_dataset=str(test))
    assert len(held_out["train"]) == 10 and len(held_out["val"]) == 2
    assert held_out["test"].source == str(test)


@pytest.mark.parametrize("task, columns", [("classification", ("text", "label")),
                                           ("vqa", ("question", "answer"))])  # fmt: skip
def test_unsupported_suffix_and_missing_file_name_the_path(tmp_path, task, columns):
    for name in ("data.txt", "captions.json"):
        (tmp_path / name).write_text("{}")
        with pytest.raises(ValueError, match="Unsupported dataset") as error:
            load_splits(task, str(tmp_path / name))
        assert str(tmp_path / name) in str(error.value)
    train, _ = labelled_files(tmp_path, images=4, columns=columns)
    missing = tmp_path / "nothing.jsonl"
    for arguments in (
        (str(missing),),
        (str(train), str(missing)),
        (str(train), None, str(missing)),
    ):
        with pytest.raises(ValueError, match="not found") as error:
            load_splits(task, *arguments)
        assert str(missing) in str(error.value)


def test_unknown_task_raises():
    with pytest.raises(ValueError, match="'detection'"):
        load_splits("detection", "data.csv")


# The shapes world


def test_shapes_world_classification_rows(tiny_shapes_world):
    for split, images in (("train", 48), ("val", 8)):
        pairs = TASK_DATA["classification"].read_shapes(tiny_shapes_world, split)
        assert len(pairs) == 2 * images and len(set(pairs.image_paths)) == images
        assert set(pairs.labels) == {"match", "mismatch"}
        assert all(text.strip() for text in pairs.texts)
        assert all(path.startswith(str(tiny_shapes_world)) for path in pairs.image_paths)
        assert all(f"/images/{split}/" in path for path in pairs.image_paths)


def test_shapes_world_vqa_rows(tiny_shapes_world):
    pairs = TASK_DATA["vqa"].read_shapes(tiny_shapes_world, "test")
    assert len(pairs) == 3 * 8 and len(set(pairs.image_paths)) == 8
    assert all(question.strip().endswith("?") for question in pairs.texts)
    assert all(answer.strip() for answer in pairs.labels)
    assert len(set(pairs.labels)) > 1


def test_shapes_spec_with_a_test_file(tiny_shapes_world, monkeypatch, tmp_path):
    monkeypatch.setenv("MMZOO_DATA_DIR", str(tiny_shapes_world.parent))
    _, test = labelled_files(tmp_path, images=3, per_image=1, columns=("question", "answer"))
    splits = load_splits("vqa", "shapes:48,8,8", test_dataset=str(test))
    assert len(splits["train"]) == 144 and len(splits["val"]) == 24
    assert len(splits["test"]) == 3 and splits["test"].source == str(test)
