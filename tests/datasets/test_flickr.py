"""Flickr8k/30k token files: captions, image folders, split lists, errors and dispatch."""

import pytest
from PIL import Image

from datasets.checked_splits import checked_split
from datasets.flickr import is_flickr_token_file, read_flickr
from datasets.sources import load_caption_splits, read_caption_file
from datasets.validation import EMPTY_TEXT, MALFORMED_ROW, NOT_UTF8, UNKNOWN_ID
from tests.datasets.test_checked_splits import skip_report


def write_image(path, size=(16, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 30, 30)).save(path)
    return path


def token_lines(names, per_image=5):
    return "".join(
        f"{name}#{k}\tcaption {k} of {name.split('.')[0]} .\n"
        for name in names
        for k in range(per_image)
    )


def flickr_tree(tmp_path, names=("a.jpg", "b.jpg", "c.jpg"), folder="Flicker8k_Dataset"):
    """A token file in text/ with its images in text/<folder>/."""
    for name in names:
        write_image(tmp_path / "text" / folder / name)
    path = tmp_path / "text" / "Flickr8k.token.txt"
    path.write_text(token_lines(names))
    return path


def test_token_file_gives_five_captions_per_image(tmp_path):
    path = flickr_tree(tmp_path)
    examples = read_flickr(path)
    folder = (tmp_path / "text" / "Flicker8k_Dataset").resolve()
    assert examples.image_paths == [str(folder / name) for name in ("a.jpg", "b.jpg", "c.jpg")]
    assert examples.captions[1] == [f"caption {k} of b ." for k in range(5)]
    assert examples.source == str(path)


@pytest.mark.parametrize(
    "folder", ["Flicker8k_Dataset", "Flickr8k_Dataset", "flickr30k-images", "Images"]
)
def test_images_resolve_in_the_official_folder_beside_the_token_file(tmp_path, folder):
    path = flickr_tree(tmp_path, folder=folder)
    examples = read_flickr(path)
    assert examples.image_paths[0] == str((tmp_path / "text" / folder / "a.jpg").resolve())


def test_images_resolve_beside_the_token_file_or_in_image_dir(tmp_path):
    write_image(tmp_path / "a.jpg")
    (tmp_path / "results_20130124.token").write_text(token_lines(["a.jpg"]))
    beside = read_flickr(tmp_path / "results_20130124.token")
    assert beside.image_paths == [str((tmp_path / "a.jpg").resolve())]
    write_image(tmp_path / "elsewhere" / "a.jpg")
    moved = read_flickr(tmp_path / "results_20130124.token", image_dir=tmp_path / "elsewhere")
    assert moved.image_paths == [str((tmp_path / "elsewhere" / "a.jpg").resolve())]


def test_lemma_token_form_and_crlf_lines_are_read(tmp_path):
    write_image(tmp_path / "a.jpg")
    path = tmp_path / "Flickr8k.lemma.token.txt"
    path.write_bytes(b"a.jpg#0\tA dog be run .\r\n\r\na.jpg#1\tA dog run fast .\r\n")
    examples = read_flickr(path)
    assert examples.captions == [["A dog be run .", "A dog run fast ."]]


def test_an_image_missing_on_disk_is_skipped_and_reported_by_the_validation_pass(tmp_path):
    path = flickr_tree(tmp_path, names=("a.jpg", "b.jpg"))
    with path.open("a") as stream:
        stream.write(token_lines(["2258277193_586949ec62.jpg.1"]))
    printed = []
    examples = checked_split(read_flickr(path), "skip", printed.append)
    assert [p.rsplit("/", 1)[1] for p in examples.image_paths] == ["a.jpg", "b.jpg"]
    assert "missing file" in printed[0] and "2258277193_586949ec62.jpg.1" in printed[0]


def test_no_image_on_disk_is_an_error_asking_for_the_image_folder(tmp_path):
    path = tmp_path / "Flickr8k.token.txt"
    path.write_text(token_lines(["a.jpg"]))
    with pytest.raises(ValueError, match="none of its 1 image files exists") as error:
        checked_split(read_flickr(path), "skip")
    assert str(path) in str(error.value) and "a.jpg" in str(error.value)
    assert "--image-dir" in str(error.value)


def test_split_lists_give_train_val_and_test_from_one_token_file(tmp_path):
    names = [f"{index}.jpg" for index in range(6)]
    path = flickr_tree(tmp_path, names=names)
    (tmp_path / "text" / "Flickr_8k.trainImages.txt").write_text("3.jpg\n0.jpg\n\n1.jpg\n3.jpg\n")
    (tmp_path / "text" / "Flickr_8k.devImages.txt").write_text("4.jpg\n")
    (tmp_path / "text" / "Flickr_8k.testImages.txt").write_text("5.jpg\n2.jpg\n")
    splits = load_caption_splits(
        f"{path}:Flickr_8k.trainImages.txt",
        f"{path}:{tmp_path / 'text' / 'Flickr_8k.devImages.txt'}",
        f"{path}:Flickr_8k.testImages.txt",
    )
    names_of = {
        split: [p.rsplit("/", 1)[1] for p in examples.image_paths]
        for split, examples in splits.items()
    }
    assert names_of == {
        "train": ["3.jpg", "0.jpg", "1.jpg"],
        "val": ["4.jpg"],
        "test": ["5.jpg", "2.jpg"],
    }
    assert splits["train"].captions[0] == [f"caption {k} of 3 ." for k in range(5)]
    assert splits["train"].source == f"{path}:{tmp_path / 'text' / 'Flickr_8k.trainImages.txt'}"


def test_split_list_image_on_the_list_but_not_on_disk_is_left_to_the_validation_pass(tmp_path):
    path = flickr_tree(tmp_path, names=("a.jpg",))
    with path.open("a") as stream:
        stream.write(token_lines(["gone.jpg"]))
    (tmp_path / "text" / "list.txt").write_text("a.jpg\ngone.jpg\n")
    examples = read_caption_file(f"{path}:list.txt")
    with pytest.raises(ValueError, match=r"row 1: .*gone.jpg: missing file"):
        checked_split(examples, "error")


@pytest.mark.parametrize(
    "content, line, reason, message",
    [
        ("a.jpg#0\tfine\na.jpg#1 no tab here\n", 2, MALFORMED_ROW,
         r"there is no tab: 'a.jpg#1 no tab here'"),
        ("a.jpg#0\tfine\na.jpg#x\tbad number\n", 2, MALFORMED_ROW, r"NAME#K .* got 'a.jpg#x'"),
        ("a.jpg#0\tfine\n\na.jpg\tno number\n", 3, MALFORMED_ROW, r"NAME#K .* got 'a.jpg'"),
        ("a.jpg#0\tfine\na.jpg#1\t   \n", 2, EMPTY_TEXT, r"caption is '   '"),
        ("a.jpg#0\tfine\na.jpg#1\tcaf\udce9\n", 2, NOT_UTF8, r"caption: invalid UTF-8 byte e9"),
    ],
)  # fmt: skip
def test_a_bad_line_is_reported_by_file_and_line_and_only_it_is_left_out(
    tmp_path, content, line, reason, message
):
    write_image(tmp_path / "a.jpg")
    path = tmp_path / "tokens.txt"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    examples = read_flickr(path)
    assert examples.captions == [["fine"]]
    kept, report = skip_report(examples)
    assert kept.captions == [["fine"]]
    assert f"  {reason}: 1 (e.g. {path} line {line})" in report
    with pytest.raises(ValueError, match=rf"{path} line {line}: {reason}: .*{message}"):
        checked_split(examples, "error")


def test_an_image_whose_every_caption_is_bad_is_reported_and_left_out(tmp_path):
    path = flickr_tree(tmp_path, names=("a.jpg", "b.jpg"))
    with path.open("a") as stream:
        stream.write("c.jpg#0\t \nc.jpg#1\t\n")
    examples = read_flickr(path)
    assert [p.rsplit("/", 1)[1] for p in examples.image_paths] == ["a.jpg", "b.jpg"]
    assert [(problem.where, problem.reason) for problem in examples.problems] == [
        (f"{path} line 11", EMPTY_TEXT),
        (f"{path} line 12", EMPTY_TEXT),
        (f"{path} line 11", EMPTY_TEXT),
    ]
    assert examples.problems[2].detail.startswith("no usable caption of ")


def test_a_file_with_no_usable_line_is_an_error(tmp_path):
    path = tmp_path / "tokens.txt"
    path.write_text("a.jpg#0\t \na.jpg#1 no tab\n")
    with pytest.raises(ValueError, match=r"tokens.txt: no usable row: 3 problems, the first "):
        read_flickr(path)
    path.write_text("\n\n")
    with pytest.raises(ValueError, match=r"tokens.txt: no captions"):
        read_flickr(path)


def test_a_split_reports_the_bad_lines_of_its_images_and_of_no_image(tmp_path):
    path = flickr_tree(tmp_path, names=("a.jpg", "b.jpg"))
    with path.open("a") as stream:
        stream.write("a.jpg#5\t \nb.jpg#5\t \nno tab\n")
    (tmp_path / "text" / "list.txt").write_text("a.jpg\n\nzzz.jpg\n")
    examples = read_caption_file(f"{path}:list.txt")
    assert [p.rsplit("/", 1)[1] for p in examples.image_paths] == ["a.jpg"]
    assert [(problem.where, problem.reason) for problem in examples.problems] == [
        (f"{path} line 11", EMPTY_TEXT),
        (f"{path} line 13", MALFORMED_ROW),
        (f"{tmp_path / 'text' / 'list.txt'} line 3", UNKNOWN_ID),
    ]
    assert examples.problems[2].detail == f"image 'zzz.jpg' is not in the token file {path}"


def test_missing_split_list_and_empty_split_list_are_errors(tmp_path):
    path = flickr_tree(tmp_path, names=("a.jpg",))
    with pytest.raises(ValueError, match=r"split list 'nothing.txt' not found") as error:
        read_caption_file(f"{path}:nothing.txt")
    assert str(tmp_path / "text" / "nothing.txt") in str(error.value)
    (tmp_path / "text" / "empty.txt").write_text("\n\n")
    with pytest.raises(ValueError, match=r"empty.txt: the split list names no image"):
        read_caption_file(f"{path}:empty.txt")


def test_token_files_are_recognised_by_content_whatever_the_suffix(tmp_path):
    write_image(tmp_path / "a.jpg")
    for name in ("Flickr8k.token.txt", "results_20130124.token", "captions.csv", "noext"):
        (tmp_path / name).write_text("\n" + token_lines(["a.jpg"], per_image=2))
        assert is_flickr_token_file(tmp_path / name)
        examples = read_caption_file(tmp_path / name)
        assert examples.captions == [["caption 0 of a .", "caption 1 of a ."]]
    (tmp_path / "table.csv").write_text("image,caption\na.jpg,first\n")
    assert not is_flickr_token_file(tmp_path / "table.csv")
    assert read_caption_file(tmp_path / "table.csv").captions == [["first"]]
    assert not is_flickr_token_file(tmp_path / "missing.txt")


def test_split_list_after_a_file_that_is_not_a_token_file_is_an_error(tmp_path):
    write_image(tmp_path / "a.jpg")
    (tmp_path / "table.csv").write_text("image,caption\na.jpg,first\n")
    (tmp_path / "list.txt").write_text("a.jpg\n")
    with pytest.raises(ValueError, match=r"only follows a Flickr token file") as error:
        read_caption_file(f"{tmp_path / 'table.csv'}:list.txt")
    assert str(tmp_path / "table.csv") in str(error.value)


def test_unsupported_text_file_lists_every_accepted_form(tmp_path):
    (tmp_path / "notes.txt").write_text("just some notes\n")
    with pytest.raises(ValueError, match="Unsupported dataset") as error:
        read_caption_file(tmp_path / "notes.txt")
    message = str(error.value)
    for form in ("'shapes'", "folder", "captions.txt", "NAME#K<TAB>CAPTION", "SPLIT_LIST",
                 "COCO captions .json", ".csv/.jsonl", "image,caption"):  # fmt: skip
        assert form in message
