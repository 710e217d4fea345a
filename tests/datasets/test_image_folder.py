"""A folder of images with captions.csv/.jsonl/.txt or per-image sidecars, and its dispatch."""

import json

import pytest
from PIL import Image

from datasets.checked_splits import checked_split
from datasets.image_folder import read_image_folder
from datasets.sources import load_caption_splits, load_splits, read_caption_file


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


def test_an_image_without_its_sidecar_is_named(tmp_path):
    folder = pictures(tmp_path / "pics")
    (folder / "cat.txt").write_text("a cat\n")
    with pytest.raises(ValueError, match=r"image 'dog.png' has no captions file 'dog.txt'") as e:
        read_image_folder(folder)
    assert str(folder) in str(e.value)


def test_an_empty_sidecar_is_named(tmp_path):
    folder = pictures(tmp_path / "pics")
    (folder / "cat.txt").write_text("a cat\n")
    (folder / "dog.txt").write_text("\n  \n")
    with pytest.raises(ValueError, match=r"dog.txt: no caption for image 'dog.png'"):
        read_image_folder(folder)


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
        ("cat.jpg\ta cat\ndog.png a dog\n", r"line 2: expected NAME<TAB>CAPTION, got 'dog.png a"),
        ("cat.jpg\ta cat\n\ndog.png\t \n", r"line 3: empty caption for 'dog.png'"),
        ("\ta cat\n", r"line 1: expected NAME<TAB>CAPTION"),
        ("\n\n", r"no captions"),
    ],
)  # fmt: skip
def test_captions_txt_errors_name_the_file_and_line(tmp_path, content, message):
    folder = pictures(tmp_path / "pics")
    (folder / "captions.txt").write_text(content)
    with pytest.raises(ValueError, match=rf"captions.txt: {message}") as error:
        read_image_folder(folder)
    assert str(folder / "captions.txt") in str(error.value)


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
