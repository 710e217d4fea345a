"""A folder of images with captions.csv/.jsonl/.txt or per-image sidecars, and its dispatch."""

import json

import pytest
from PIL import Image

from datasets.checked_splits import checked_split
from datasets.image_folder import read_image_folder
from datasets.sources import load_caption_splits, load_splits, read_caption_file
from datasets.validation import EMPTY_TEXT, MALFORMED_ROW, MISSING_FILE, NOT_UTF8
from tests.datasets.test_checked_splits import skip_report


def write_image(path, size=(10, 14)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 200, 40)).save(path)
    return path


def image_names(examples):
    return [path.rsplit("/", 1)[1] for path in examples.image_paths]


def pictures(folder, names=("cat.jpg", "dog.png")):
    for name in names:
        write_image(folder / name)
    return folder


@pytest.mark.parametrize("name", ["captions.csv", "captions.jsonl", "captions.txt"])
def test_a_captions_file_in_the_folder(tmp_path, name):
    folder = pictures(tmp_path / "pics")
    rows = [("cat.jpg", "a cat"), ("dog.png", "a dog"), ("cat.jpg", "a small cat")]
    if name == "captions.csv":
        text = "image,caption\n" + "".join(f"{image},{caption}\n" for image, caption in rows)
    elif name == "captions.jsonl":
        lines = [json.dumps({"image": image, "caption": caption}) for image, caption in rows]
        text = "\n".join(lines) + "\n"
    else:
        text = "".join(f"{image}\t{caption}\n" for image, caption in rows)
    (folder / name).write_text(text)
    examples = read_image_folder(folder)
    assert examples.image_paths == [str((folder / n).resolve()) for n in ("cat.jpg", "dog.png")]
    assert examples.captions == [["a cat", "a small cat"], ["a dog"]]
    assert examples.source == str(folder / name)


def test_captions_file_names_resolve_in_image_dir_when_given(tmp_path):
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "captions.txt").write_text("cat.jpg\ta cat\n")
    pictures(tmp_path / "elsewhere", ("cat.jpg",))
    examples = read_image_folder(tmp_path / "meta", image_dir=tmp_path / "elsewhere")
    assert examples.image_paths == [str((tmp_path / "elsewhere" / "cat.jpg").resolve())]


def test_per_image_sidecars_give_one_caption_a_line(tmp_path):
    folder = pictures(tmp_path / "pics", ("dog.png", "cat.jpg", "bird.JPEG"))
    (folder / "cat.txt").write_text("a cat\n\n  a sleeping cat  \n")
    (folder / "dog.txt").write_text("a dog\n")
    (folder / "bird.txt").write_text("a bird\n")
    (folder / "README.md").write_text("not an image")
    examples = read_image_folder(folder)
    assert image_names(examples) == ["bird.JPEG", "cat.jpg", "dog.png"]
    assert examples.captions == [["a bird"], ["a cat", "a sleeping cat"], ["a dog"]]
    assert examples.source == str(folder)


def test_an_image_without_its_sidecar_is_reported_and_left_out(tmp_path):
    folder = pictures(tmp_path / "pics")
    (folder / "cat.txt").write_text("a cat\n")
    examples = read_image_folder(folder)
    assert image_names(examples) == ["cat.jpg"]
    kept, report = skip_report(examples)
    assert image_names(kept) == ["cat.jpg"]
    assert f"  {MISSING_FILE}: 1 (e.g. {folder / 'dog.txt'})" in report
    with pytest.raises(ValueError, match=r"dog.txt: missing file: image 'dog.png' has no captions"):
        checked_split(examples, "error")


@pytest.mark.parametrize(
    "sidecar, captions, where, reason, detail",
    [
        (b"\n  \n", [], "dog.txt", EMPTY_TEXT, "no usable caption of .*dog.png"),
        (b"a dog\nun chien tr\xe8s sage\n", [["a dog"]], "dog.txt line 2", NOT_UTF8,
         "caption: invalid UTF-8 byte e8 at character 11"),
    ],
)  # fmt: skip
def test_a_bad_sidecar_caption_is_reported_and_only_it_is_left_out(
    tmp_path, sidecar, captions, where, reason, detail
):
    folder = pictures(tmp_path / "pics")
    (folder / "cat.txt").write_text("a cat\n")
    (folder / "dog.txt").write_bytes(sidecar)
    examples = read_image_folder(folder)
    assert examples.captions == [["a cat"], *captions]
    kept, report = skip_report(examples)
    assert f"  {reason}: 1 (e.g. {folder / where})" in report
    with pytest.raises(ValueError, match=rf"{where}: {reason}: {detail}"):
        checked_split(examples, "error")


def test_a_folder_without_captions_names_the_folder_and_the_files_it_looked_for(tmp_path):
    folder = pictures(tmp_path / "pics")
    with pytest.raises(ValueError, match="no captions found") as error:
        read_caption_file(folder)
    message = str(error.value)
    assert message.startswith(str(folder))
    for looked_for in ("captions.csv", "captions.jsonl", "captions.txt", "NAME.txt", "2 images"):
        assert looked_for in message


def test_several_captions_files_are_refused(tmp_path):
    folder = pictures(tmp_path / "pics")
    (folder / "captions.csv").write_text("image,caption\ncat.jpg,a cat\n")
    (folder / "captions.txt").write_text("cat.jpg\ta cat\n")
    with pytest.raises(ValueError, match=r"several captions files \['captions.csv', 'captions."):
        read_image_folder(folder)


@pytest.mark.parametrize(
    "content, message",
    [
        ("\n\n", r"captions.txt: no captions"),
        ("\ta cat\n", r"captions.txt: no usable row: 1 problems, the first .*captions.txt line 1: "
         "malformed row: expected NAME<TAB>CAPTION"),
    ],
)  # fmt: skip
def test_captions_txt_with_no_usable_line_is_an_error(tmp_path, content, message):
    folder = pictures(tmp_path / "pics")
    (folder / "captions.txt").write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        read_image_folder(folder)
    assert str(error.value).startswith(str(folder / "captions.txt"))


@pytest.mark.parametrize(
    "content, line, reason, detail",
    [
        ("cat.jpg\ta cat\ndog.png a dog\n", 2, MALFORMED_ROW,
         r"expected NAME<TAB>CAPTION, got 'dog.png a dog'"),
        ("cat.jpg\ta cat\n\ncat.jpg\t \n", 3, EMPTY_TEXT, r"caption is ' '"),
        ("cat.jpg\ta cat\n\tno name\n", 2, MALFORMED_ROW, r"expected NAME<TAB>CAPTION"),
    ],
)  # fmt: skip
def test_a_bad_captions_txt_line_is_reported_and_only_it_is_left_out(
    tmp_path, content, line, reason, detail
):
    folder = pictures(tmp_path / "pics")
    (folder / "captions.txt").write_text(content)
    examples = read_image_folder(folder)
    assert examples.captions == [["a cat"]]
    kept, report = skip_report(examples)
    assert kept.captions == [["a cat"]]
    path = folder / "captions.txt"
    assert f"  {reason}: 1 (e.g. {path} line {line})" in report
    with pytest.raises(ValueError, match=rf"captions.txt line {line}: {reason}: {detail}"):
        checked_split(examples, "error")


def test_a_folder_spec_is_dispatched_and_split(tmp_path):
    folder = tmp_path / "pics"
    for index in range(10):
        write_image(folder / f"{index}.png")
        (folder / f"{index}.txt").write_text(f"picture {index}\n")
    splits = load_caption_splits(f"{folder}/", seed=0)
    assert len(splits["train"]) == 9 and len(splits["val"]) == 1
    assert splits["train"].captions[0] == ["picture 0"]
    retrieval = load_splits("retrieval", str(folder), test_dataset=str(folder))
    assert len(retrieval["test"]) == 10


def test_a_folder_is_not_a_classification_or_vqa_dataset(tmp_path):
    folder = pictures(tmp_path / "pics")
    for task in ("classification", "vqa"):
        with pytest.raises(ValueError, match="Unsupported dataset") as error:
            load_splits(task, str(folder))
        assert str(folder) in str(error.value)


def test_a_listed_image_missing_from_the_folder_is_reported_by_the_validation_pass(tmp_path):
    folder = pictures(tmp_path / "pics")
    (folder / "captions.txt").write_text("cat.jpg\ta cat\nfish.jpg\ta fish\n")
    printed = []
    examples = checked_split(read_image_folder(folder), "skip", printed.append)
    assert [path.rsplit("/", 1)[1] for path in examples.image_paths] == ["cat.jpg"]
    assert "fish.jpg" in printed[0] and "missing file" in printed[0]
