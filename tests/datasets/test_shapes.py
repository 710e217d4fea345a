"""Tests of the built-in shapes world generator (datasets/shapes.py)."""

import collections
import hashlib
import io
import itertools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datasets import shapes
from datasets.shapes_captions import POSITIONS

SMALL_COUNTS = {"train": 20, "val": 5, "test": 5}
SPLITS = ("train", "val", "test")
LOCATION_PHRASES = {
    "in the top left": "top left",
    "at the top": "top",
    "in the top right": "top right",
    "on the left": "left",
    "in the center": "center",
    "on the right": "right",
    "in the bottom left": "bottom left",
    "at the bottom": "bottom",
    "in the bottom right": "bottom right",
}
# Nominal colours, independent of the generator's palette.
NOMINAL_RGB = {
    "red": (255, 0, 0),
    "green": (0, 200, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "purple": (128, 0, 128),
    "cyan": (0, 255, 255),
}
LOCATION = "|".join(LOCATION_PHRASES)
OBJECT_PATTERN = re.compile(rf"a (small|large) (\w+) (\w+) ({LOCATION})")
FACT_PATTERN = re.compile(rf"there is a (\w+) (\w+) ({LOCATION})")
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small_world(tmp_path_factory) -> Path:
    return shapes.ensure_shapes_world(tmp_path_factory.mktemp("small"), counts=SMALL_COUNTS)


@pytest.fixture(scope="module")
def larger_world(tmp_path_factory) -> Path:
    """Enough images for statistics (about half a second to generate)."""
    counts = {"train": 300, "val": 0, "test": 0}
    return shapes.ensure_shapes_world(tmp_path_factory.mktemp("larger"), counts=counts)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def objects_by_image(root: Path, split: str) -> dict[str, list[dict]]:
    return {
        record["image"]: record["objects"] for record in read_jsonl(root / f"objects_{split}.jsonl")
    }


def file_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def triples(objects: list[dict]) -> set[tuple[str, str, str]]:
    return {(item["colour"], item["shape"], item["position"]) for item in objects}


def parse_canonical(text: str) -> list[tuple[str, str, str, str]]:
    parts = re.split(r", | and ", text)
    matches = [OBJECT_PATTERN.fullmatch(part) for part in parts]
    assert all(matches), f"not a canonical caption: {text!r}"
    return [(m[2], m[3], LOCATION_PHRASES[m[4]], m[1]) for m in matches]


def test_same_seed_gives_identical_files_and_manifest_hashes(tmp_path, small_world):
    again = shapes.ensure_shapes_world(tmp_path, counts=SMALL_COUNTS)
    first, second = file_bytes(small_world), file_bytes(again)
    assert first == second
    manifest = json.loads(first["manifest.json"])
    listed = {entry["path"]: entry["sha256"] for entry in manifest["files"]}
    assert set(listed) == set(first) - {"manifest.json"}
    for path, digest in listed.items():
        assert hashlib.sha256(first[path]).hexdigest() == digest, path


def test_different_seed_and_split_give_different_images(tmp_path, small_world):
    other = shapes.ensure_shapes_world(tmp_path, seed=1, counts=SMALL_COUNTS)
    assert other.name != small_world.name
    first, second = file_bytes(small_world), file_bytes(other)
    images = [path for path in first if path.endswith(".jpg")]
    assert len(images) == sum(SMALL_COUNTS.values())
    assert all(first[path] != second[path] for path in images)
    assert first["images/train/000001.jpg"] != first["images/val/000001.jpg"]


def test_an_image_does_not_depend_on_the_counts(tmp_path, small_world):
    fewer = shapes.ensure_shapes_world(tmp_path, counts={"train": 3, "val": 1, "test": 1})
    for image in ("images/train/000003.jpg", "images/test/000001.jpg"):
        assert (fewer / image).read_bytes() == (small_world / image).read_bytes()


def test_counts_files_and_relative_paths(small_world):
    manifest = json.loads((small_world / "manifest.json").read_text())
    assert manifest["counts"] == SMALL_COUNTS
    assert manifest["seed"] == 0 and manifest["image_size"] == 64
    for split, count in SMALL_COUNTS.items():
        coco = json.loads((small_world / f"captions_{split}.json").read_text())
        assert {"info", "images", "annotations"} <= set(coco)
        names = [image["file_name"] for image in coco["images"]]
        assert names == [f"images/{split}/{index:06d}.jpg" for index in range(1, count + 1)]
        assert all((small_world / name).is_file() for name in names)
        assert all(image["width"] == image["height"] == 64 for image in coco["images"])
        ids = [annotation["id"] for annotation in coco["annotations"]]
        assert len(ids) == len(set(ids)) == 5 * count
        for kind in ("vqa", "matching", "objects"):
            records = read_jsonl(small_world / f"{kind}_{split}.jsonl")
            assert {record["image"] for record in records} == set(names)


def test_five_distinct_captions_name_every_object(small_world):
    for split in SPLITS:
        coco = json.loads((small_world / f"captions_{split}.json").read_text())
        objects = objects_by_image(small_world, split)
        captions = collections.defaultdict(list)
        for annotation in coco["annotations"]:
            captions[annotation["image_id"]].append(annotation["caption"])
        for image in coco["images"]:
            texts = captions[image["id"]]
            assert len(texts) == 5 and len(set(texts)) == 5, texts
            scene = objects[image["file_name"]]
            assert 1 <= len(scene) <= 3
            for text in texts:
                assert text == text.lower() and len(text.split()) < 30, text
                for item in scene:
                    assert f"{item['colour']} {item['shape']}" in text, (text, item)
            canonical = parse_canonical(texts[0])
            expected = [
                (item["colour"], item["shape"], item["position"], item["size"]) for item in scene
            ]
            assert canonical == expected  # reading order, sizes and locations


def test_scenes_have_one_to_three_objects_uniformly_with_distinct_cells(larger_world):
    scenes = objects_by_image(larger_world, "train").values()
    sizes = collections.Counter(len(scene) for scene in scenes)
    assert set(sizes) == {1, 2, 3} and min(sizes.values()) > 0.25 * len(scenes), sizes
    for scene in scenes:
        assert len({item["position"] for item in scene}) == len(scene)
        assert [item["position"] for item in scene] == sorted(
            (item["position"] for item in scene), key=POSITIONS.index
        )


def test_captions_use_several_templates_and_a_small_vocabulary(larger_world):
    coco = json.loads((larger_world / "captions_train.json").read_text())
    texts = [annotation["caption"] for annotation in coco["annotations"]]
    for marker in (
        "there is ",
        "an image with ",
        " shapes: ",
        " above ",
        " below ",
        " to the left of ",
        " to the right of ",
    ):
        assert any(marker in text for text in texts), marker
    assert any("small" not in text and "large" not in text for text in texts)
    words = {word for text in texts for word in re.sub(r"[^\w ]", " ", text).split()}
    assert len(words) < 80, sorted(words)


def test_relations_are_true(larger_world):
    objects = objects_by_image(larger_world, "train")
    coco = json.loads((larger_world / "captions_train.json").read_text())
    files = {image["id"]: image["file_name"] for image in coco["images"]}
    pattern = re.compile(
        r"a (?:small |large )?(\w+) (\w+) "
        r"(above|below|to the left of|to the right of) "
        r"a (?:small |large )?(\w+) (\w+)"
    )
    checked = 0
    for annotation in coco["annotations"]:
        match = pattern.match(annotation["caption"])
        if not match:
            continue
        where = {
            (item["colour"], item["shape"]): divmod(POSITIONS.index(item["position"]), 3)
            for item in objects[files[annotation["image_id"]]]
        }
        row, column = where[match[1], match[2]]
        other_row, other_column = where[match[4], match[5]]
        relation = match[3]
        assert {
            "above": row < other_row,
            "below": row > other_row,
            "to the left of": row == other_row and column < other_column,
            "to the right of": row == other_row and column > other_column,
        }[relation]
        checked += 1
    assert checked > 50


@pytest.mark.parametrize("image_size", [32, 64])
def test_images_show_each_object_in_its_colour_at_its_position(tmp_path, image_size):
    root = shapes.ensure_shapes_world(tmp_path, image_size=image_size, counts=SMALL_COUNTS)
    cell = image_size / 3
    for split in SPLITS:
        for image, scene in objects_by_image(root, split).items():
            with Image.open(root / image) as decoded:
                assert decoded.format == "JPEG" and decoded.mode == "RGB"
                pixels = np.asarray(decoded).astype(int)
            assert pixels.shape == (image_size, image_size, 3)
            assert len({item["position"] for item in scene}) == len(scene)
            for item in scene:
                center_x, center_y = item["center"]
                row, column = divmod(POSITIONS.index(item["position"]), 3)
                assert column * cell < center_x < (column + 1) * cell
                assert row * cell < center_y < (row + 1) * cell
                observed = pixels[int(center_y), int(center_x)]
                nearest = min(
                    NOMINAL_RGB, key=lambda name: np.sum((observed - NOMINAL_RGB[name]) ** 2)
                )
                assert nearest == item["colour"], (image, item, observed)
                palette = np.array(shapes.COLOUR_RGB[item["colour"]])
                assert np.abs(observed - palette).max() <= 30, (image, item, observed)
            assert np.abs(pixels[0, 0] - np.array(shapes.BACKGROUND_RGB)).max() <= 30


def test_shapes_and_sizes_are_drawn_as_named(small_world):
    """In the box around an object, a square fills ~100%, a circle ~79%, a triangle ~50%."""
    expected_fill = {"square": 1.0, "circle": np.pi / 4, "triangle": 0.5}
    radii = {"small": set(), "large": set()}
    for split in SPLITS:
        for image, scene in objects_by_image(small_world, split).items():
            pixels = np.asarray(Image.open(small_world / image)).astype(int)
            for item in scene:
                center_x, center_y = item["center"]
                radius = item["radius"]
                radii[item["size"]].add(radius)
                rows = slice(int(round(center_y - radius)), int(round(center_y + radius)))
                columns = slice(int(round(center_x - radius)), int(round(center_x + radius)))
                box = pixels[rows, columns]
                colour = np.array(shapes.COLOUR_RGB[item["colour"]])
                fill = np.mean(np.abs(box - colour).max(axis=-1) < 60)
                assert abs(fill - expected_fill[item["shape"]]) < 0.12, (image, item, fill)
    (small,), (large,) = radii["small"], radii["large"]
    assert large > 1.5 * small


@pytest.mark.parametrize("world", ["small_world", "larger_world"])
def test_vqa_answers_follow_from_the_objects(request, world):
    root = request.getfixturevalue(world)
    for split in SPLITS:
        objects = objects_by_image(root, split)
        questions = read_jsonl(root / f"vqa_{split}.jsonl")
        assert collections.Counter(record["image"] for record in questions) == {
            image: 3 for image in objects
        }
        for record in questions:
            scene, question, answer = objects[record["image"]], record["question"], record["answer"]
            pairs = [(item["colour"], item["shape"]) for item in scene]
            if match := re.fullmatch(r"what colour is the (\w+)\?", question):
                same_shape = [item for item in scene if item["shape"] == match[1]]
                assert len(same_shape) == 1 and answer == same_shape[0]["colour"], record
            elif question == "how many shapes are there?":
                assert answer == str(len(scene))
            elif match := re.fullmatch(rf"what shape is ({LOCATION})\?", question):
                at_cell = [item for item in scene if item["position"] == LOCATION_PHRASES[match[1]]]
                assert len(at_cell) == 1 and answer == at_cell[0]["shape"], record
            elif match := re.fullmatch(r"is there a (\w+) (\w+)\?", question):
                assert answer == ("yes" if (match[1], match[2]) in pairs else "no"), record
            elif match := re.fullmatch(r"where is the (\w+) (\w+)\?", question):
                found = [
                    item
                    for item in scene
                    if (item["colour"], item["shape"]) == (match[1], match[2])
                ]
                assert len(found) == 1 and answer == found[0]["position"], record
            else:
                pytest.fail(f"unexpected question {question!r}")


def test_vqa_yes_no_is_balanced_and_every_kind_occurs(larger_world):
    questions = read_jsonl(larger_world / "vqa_train.jsonl")
    prefixes = ("what colour", "how many", "what shape", "is there", "where is")
    kinds = collections.Counter(
        prefix
        for record in questions
        for prefix in prefixes
        if record["question"].startswith(prefix)
    )
    assert sum(kinds.values()) == len(questions)
    assert min(kinds[prefix] for prefix in prefixes) > 0.1 * len(questions), kinds
    answers = collections.Counter(
        record["answer"] for record in questions if record["question"].startswith("is there")
    )
    assert abs(answers["yes"] - answers["no"]) <= 0.25 * (answers["yes"] + answers["no"])


def check_statement(text: str, scene: list[dict]) -> tuple[str, int]:
    """Returns the statement's form and how many attributes differ from the scene.

    A fact differs by its distance to the nearest object; a caption by the smallest
    total distance over all pairings of its objects with the scene's.
    """
    truth = [(item["colour"], item["shape"], item["position"], item["size"]) for item in scene]
    if fact := FACT_PATTERN.fullmatch(text):
        stated = (fact[1], fact[2], LOCATION_PHRASES[fact[3]])
        return "fact", min(distance(stated, item[:3]) for item in truth)
    stated = parse_canonical(text)
    positions = [position for _, _, position, _ in stated]
    assert positions == sorted(positions, key=POSITIONS.index), text  # reading order
    assert len(set(positions)) == len(positions), text
    assert len({(colour, shape) for colour, shape, _, _ in stated}) == len(stated), text
    if len(stated) != len(truth):
        return "caption", 99
    return "caption", min(
        sum(map(distance, stated, pairing)) for pairing in itertools.permutations(truth)
    )


def distance(first: tuple, second: tuple) -> int:
    return sum(a != b for a, b in zip(first, second, strict=True))


def test_matching_has_one_true_and_one_false_statement_of_the_same_form(larger_world):
    objects = objects_by_image(larger_world, "train")
    statements = collections.defaultdict(list)
    for record in read_jsonl(larger_world / "matching_train.jsonl"):
        statements[record["image"]].append(record)
    assert set(statements) == set(objects)
    forms = collections.Counter()
    for image, records in statements.items():
        assert sorted(record["label"] for record in records) == ["match", "mismatch"]
        results = {
            record["label"]: check_statement(record["text"], objects[image]) for record in records
        }
        assert results["match"][1] == 0, records
        assert results["mismatch"][1] >= 1, records
        assert results["match"][0] == results["mismatch"][0], records
        forms[results["match"][0]] += 1
    assert min(forms.values()) > 0.35 * len(statements), forms


def test_matching_text_alone_does_not_reveal_the_label(larger_world):
    records = read_jsonl(larger_world / "matching_train.jsonl")
    by_label = collections.defaultdict(collections.Counter)
    for line, record in enumerate(records):
        features = by_label[record["label"]]
        words = record["text"].split()
        features["length", len(words)] += 1
        features["line parity", line % 2] += 1
        features.update(words)
        features.update(zip(words, words[1:], strict=False))
    match, mismatch = by_label["match"], by_label["mismatch"]
    for key in set(match) | set(mismatch):
        total = match[key] + mismatch[key]
        if total >= 100:  # the counts of each label differ by < 4 standard deviations
            assert abs(match[key] - mismatch[key]) <= 4 * total**0.5, (key, match[key], total)


def test_a_second_call_does_not_rewrite(small_world):
    manifest = small_world / "manifest.json"
    image = small_world / "images" / "train" / "000001.jpg"
    before = (manifest.stat().st_mtime_ns, image.stat().st_mtime_ns)
    again = shapes.ensure_shapes_world(small_world.parent, counts=SMALL_COUNTS)
    assert again == small_world
    assert (manifest.stat().st_mtime_ns, image.stat().st_mtime_ns) == before


@pytest.mark.parametrize("damage", ["manifest.json", "images/val/000002.jpg"])
def test_an_incomplete_folder_is_regenerated(tmp_path, damage):
    root = shapes.ensure_shapes_world(tmp_path, counts=SMALL_COUNTS)
    expected = file_bytes(root)
    (root / damage).unlink()
    assert shapes.ensure_shapes_world(tmp_path, counts=SMALL_COUNTS) == root
    assert file_bytes(root) == expected
    assert [path.name for path in tmp_path.iterdir()] == [root.name]


def test_a_failed_run_leaves_nothing_behind(tmp_path, monkeypatch):
    def fail(*arguments):
        raise KeyboardInterrupt

    monkeypatch.setattr(shapes, "_write_split", fail)
    with pytest.raises(KeyboardInterrupt):
        shapes.ensure_shapes_world(tmp_path, counts=SMALL_COUNTS)
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_killed_runs_are_removed_once_stale(tmp_path):
    name = shapes.ensure_shapes_world(tmp_path, counts=SMALL_COUNTS).name
    stale, fresh = tmp_path / f".{name}.tmp-stale", tmp_path / f".{name}.tmp-running"
    for folder in (stale, fresh):
        (folder / "images" / "train").mkdir(parents=True)
    old = time.time() - shapes.STALE_SECONDS - 60
    for path in (stale, stale / "images", stale / "images" / "train"):
        os.utime(path, (old, old))
    (tmp_path / name / "manifest.json").unlink()
    shapes.ensure_shapes_world(tmp_path, counts=SMALL_COUNTS)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([name, fresh.name])


def test_losing_the_race_keeps_the_winners_world(tmp_path, monkeypatch):
    root = shapes.ensure_shapes_world(tmp_path, counts=SMALL_COUNTS)
    before = file_bytes(root)
    stamp = (root / "manifest.json").stat().st_mtime_ns
    real_is_complete, calls = shapes._is_complete, []

    def not_yet_complete_once(folder, header):
        calls.append(folder)
        return len(calls) > 1 and real_is_complete(folder, header)

    monkeypatch.setattr(shapes, "_is_complete", not_yet_complete_once)
    assert shapes.ensure_shapes_world(tmp_path, counts=SMALL_COUNTS) == root
    assert len(calls) == 2  # the rename failed and the winner's world was found complete
    assert (root / "manifest.json").stat().st_mtime_ns == stamp
    assert file_bytes(root) == before
    assert [path.name for path in tmp_path.iterdir()] == [root.name]


@pytest.mark.parametrize(
    ("arguments", "value"),
    [
        ({"image_size": 16}, "16"),
        ({"counts": {"train": -3}}, "-3"),
        ({"counts": {"training": 5}}, "training"),
        ({"counts": {"val": 2.5}}, "2.5"),
        ({"seed": -1}, "-1"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_value(tmp_path, arguments, value):
    with pytest.raises(ValueError, match=re.escape(value)):
        shapes.ensure_shapes_world(tmp_path, **arguments)
    assert list(tmp_path.iterdir()) == []


def test_default_cache_dir_honours_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MMZOO_DATA_DIR", str(tmp_path))
    assert shapes.default_cache_dir() == tmp_path
    monkeypatch.delenv("MMZOO_DATA_DIR")
    assert shapes.default_cache_dir() == Path.home() / ".cache" / "mmzoo" / "datasets"


def test_command_line_prints_the_folder(tmp_path):
    command = [
        sys.executable,
        "-m",
        "datasets.shapes",
        "--out",
        str(tmp_path),
        "--seed",
        "3",
        "--image-size",
        "40",
        "--train",
        "2",
        "--val",
        "1",
        "--test",
        "1",
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    folder = Path(result.stdout.strip())
    assert folder == tmp_path / f"shapes-v{shapes.GENERATOR_VERSION}-seed3-40px-2-1-1"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 2, "val": 1, "test": 1}
    with Image.open(io.BytesIO((folder / "images/test/000001.jpg").read_bytes())) as image:
        assert image.size == (40, 40)
    bad = subprocess.run(
        command[:-2] + ["--test", "-4"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert bad.returncode != 0 and "-4" in bad.stderr
