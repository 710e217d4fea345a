"""The built-in "shapes world": a seeded generator of small captioned images.

Each image shows 1-3 coloured shapes (circle, square, triangle; six colours; small
or large) in distinct cells of a 3x3 grid on a dark, slightly noisy background. The
world is written once into a cache folder in the file formats users bring their own
data in, so every reader of the zoo works on it unchanged:

```
<root>/images/{train,val,test}/{index:06d}.jpg   index from 000001
<root>/captions_{split}.json    COCO captions: images + 5 annotations per image
<root>/vqa_{split}.jsonl        {"image", "question", "answer"}, 3 per image
<root>/matching_{split}.jsonl   {"image", "text", "label": "match" | "mismatch"}, 2 per image
<root>/objects_{split}.jsonl    {"image", "objects": [{"shape", "colour", "size",
                                 "position", "center": [x, y], "radius"}]}  (pixels)
<root>/manifest.json            parameters, counts and the sha256 of every file
```

Paths inside the files are relative to the root. The same seed gives byte-identical
files: every image draws from its own `numpy.random.default_rng` seeded by
(seed, split, index), so splits differ and an image does not depend on the counts.
The world is generated into a hidden sibling folder with manifest.json written last
and then renamed into place, so a folder is only ever seen complete.

Example:
    >>> root = ensure_shapes_world("/tmp/data", counts={"train": 20, "val": 5, "test": 5})
    >>> sorted(path.name for path in root.glob("*.json"))
    ['captions_test.json', 'captions_train.json', 'captions_val.json', 'manifest.json']

Command line: `python -m datasets.shapes --out DIR [--seed N] [--image-size N]
[--train N --val N --test N]` prints the folder.
"""

import argparse
import functools
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from datasets.shapes_captions import (
    COLOURS,
    POSITIONS,
    SHAPES,
    SIZES,
    Object,
    make_captions,
    make_matching,
    make_questions,
)

GENERATOR_VERSION = 2
DEFAULT_COUNTS = {"train": 4000, "val": 500, "test": 500}
MINIMUM_IMAGE_SIZE = 32
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
COLOUR_RGB = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 220, 50),
    "purple": (160, 60, 210),
    "cyan": (50, 215, 225),
}
BACKGROUND_RGB = (40, 40, 40)
NOISE_AMPLITUDE = 6
# Radius (half the side for squares and triangles) as a fraction of the image side.
RADIUS_FRACTION = {"small": 0.085, "large": 0.14}
JITTER_FRACTION = 0.04
JPEG_QUALITY = 95
# Hidden siblings untouched this long are left over from killed runs (a run takes seconds).
STALE_SECONDS = 3600


def default_cache_dir() -> Path:
    """Returns `$MMZOO_DATA_DIR` if set, else `~/.cache/mmzoo/datasets`."""
    configured = os.environ.get("MMZOO_DATA_DIR")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "mmzoo" / "datasets"


def _is_integer(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_arguments(
    seed: int, image_size: int, counts: Mapping[str, int] | None
) -> dict[str, int]:
    if not _is_integer(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not _is_integer(image_size) or image_size < MINIMUM_IMAGE_SIZE:
        raise ValueError(
            f"image_size must be an integer >= {MINIMUM_IMAGE_SIZE}, got {image_size!r}"
        )
    merged = dict(DEFAULT_COUNTS)
    if counts is not None:
        unknown = sorted(set(counts) - set(DEFAULT_COUNTS))
        if unknown:
            raise ValueError(
                f"counts has unknown splits {unknown}; expected some of {list(DEFAULT_COUNTS)}"
            )
        merged.update(counts)
    for split, count in merged.items():
        if not _is_integer(count) or count < 0:
            raise ValueError(f"counts[{split!r}] must be a non-negative integer, got {count!r}")
    return {split: int(count) for split, count in merged.items()}


def _folder_name(seed: int, image_size: int, counts: Mapping[str, int]) -> str:
    sizes = "-".join(str(counts[split]) for split in DEFAULT_COUNTS)
    return f"shapes-v{GENERATOR_VERSION}-seed{seed}-{image_size}px-{sizes}"


def _sample_scene(rng: np.random.Generator, image_size: int) -> list[Object]:
    """Draws 1-3 objects in distinct cells with distinct colour-shape pairs, in reading order.

    Every shape stays inside its cell (half a pixel from its edges), so shapes never
    overlap; the centre is jittered by up to `JITTER_FRACTION` of the side where the
    cell leaves room.
    """
    count = int(rng.integers(1, 4))
    cells = rng.choice(len(POSITIONS), size=count, replace=False)
    pairs = rng.choice(len(COLOURS) * len(SHAPES), size=count, replace=False)
    cell_size = image_size / 3
    objects = []
    for cell, pair in sorted(zip(cells.tolist(), pairs.tolist(), strict=True)):
        size = SIZES[int(rng.integers(len(SIZES)))]
        radius = RADIUS_FRACTION[size] * image_size
        jitter = max(0.0, min(JITTER_FRACTION * image_size, cell_size / 2 - radius - 0.5))
        row, column = divmod(cell, 3)
        offset_x, offset_y = rng.uniform(-jitter, jitter, size=2)
        objects.append(
            {
                "shape": SHAPES[pair % len(SHAPES)],
                "colour": COLOURS[pair // len(SHAPES)],
                "size": size,
                "position": POSITIONS[cell],
                "center": [
                    round((column + 0.5) * cell_size + offset_x, 2),
                    round((row + 0.5) * cell_size + offset_y, 2),
                ],
                "radius": round(radius, 2),
            }
        )
    return objects


def _draw(objects: list[Object], image_size: int, rng: np.random.Generator) -> np.ndarray:
    """Paints the objects with numpy masks (pixel centres inside the shape) and adds noise."""
    coordinates = np.arange(image_size) + 0.5
    rows, columns = coordinates[:, None], coordinates[None, :]
    image = np.empty((image_size, image_size, 3), np.int16)
    image[:] = BACKGROUND_RGB
    for item in objects:
        center_x, center_y = item["center"]
        radius = item["radius"]
        across = np.abs(columns - center_x)
        down = rows - center_y
        if item["shape"] == "circle":
            mask = across**2 + down**2 <= radius**2
        elif item["shape"] == "square":
            mask = (across <= radius) & (np.abs(down) <= radius)
        else:  # triangle pointing up: apex at the top, base at the bottom edge of the box
            mask = (down <= radius) & (across <= (down + radius) / 2)
        image[mask] = COLOUR_RGB[item["colour"]]
    image += rng.integers(-NOISE_AMPLITUDE, NOISE_AMPLITUDE + 1, size=image.shape, dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


def _encode_jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buffer.getvalue()


def _jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(record) + "\n" for record in records).encode("utf-8")


class _Writer:
    """Writes files under a folder and remembers their sha256 for the manifest."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.files: dict[str, dict] = {}

    def write(self, relative_path: str, data: bytes) -> None:
        path = self.folder / relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.files[relative_path] = {
            "path": relative_path,
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
        }


def _write_split(writer: _Writer, split: str, count: int, seed: int, image_size: int) -> None:
    images, annotations, questions, statements, ground_truth = [], [], [], [], []
    for index in range(1, count + 1):
        sequence = np.random.SeedSequence([seed, SPLIT_CODES[split], index])
        scene_rng, caption_rng, question_rng, matching_rng = (
            np.random.default_rng(child) for child in sequence.spawn(4)
        )
        objects = _sample_scene(scene_rng, image_size)
        image = f"images/{split}/{index:06d}.jpg"
        writer.write(image, _encode_jpeg(_draw(objects, image_size, scene_rng)))
        images.append({"id": index, "file_name": image, "width": image_size, "height": image_size})
        for caption in make_captions(objects, caption_rng):
            annotations.append({"id": len(annotations) + 1, "image_id": index, "caption": caption})
        for question, answer in make_questions(objects, question_rng):
            questions.append({"image": image, "question": question, "answer": answer})
        other_scene = functools.partial(_sample_scene, matching_rng, image_size)
        for text, label in make_matching(objects, matching_rng, other_scene):
            statements.append({"image": image, "text": text, "label": label})
        ground_truth.append({"image": image, "objects": objects})
    info = {
        "description": f"shapes world, {split} split",
        "version": GENERATOR_VERSION,
        "seed": seed,
    }
    coco = {"info": info, "licenses": [], "images": images, "annotations": annotations}
    writer.write(f"captions_{split}.json", json.dumps(coco).encode("utf-8"))
    writer.write(f"vqa_{split}.jsonl", _jsonl(questions))
    writer.write(f"matching_{split}.jsonl", _jsonl(statements))
    writer.write(f"objects_{split}.jsonl", _jsonl(ground_truth))


def _manifest_header(seed: int, image_size: int, counts: Mapping[str, int]) -> dict:
    return {
        "name": "shapes-world",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "image_size": image_size,
        "counts": dict(counts),
    }


def _write_world(folder: Path, seed: int, image_size: int, counts: Mapping[str, int]) -> None:
    """Writes every file under `folder`, manifest.json last."""
    writer = _Writer(folder)
    for split in DEFAULT_COUNTS:
        (folder / "images" / split).mkdir(parents=True, exist_ok=True)
        _write_split(writer, split, counts[split], seed, image_size)
    manifest = _manifest_header(seed, image_size, counts)
    manifest["files"] = [writer.files[path] for path in sorted(writer.files)]
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def _is_complete(folder: Path, header: Mapping[str, object]) -> bool:
    """Whether `folder` has a manifest for these parameters and every file it lists."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        if any(manifest.get(key) != value for key, value in header.items()):
            return False
        return all((folder / entry["path"]).is_file() for entry in manifest["files"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _remove_folder(folder: Path) -> None:
    """Moves `folder` aside atomically (it may be gone already), then deletes it."""
    trash = folder.with_name(f".{folder.name}.trash-{uuid.uuid4().hex}")
    try:
        os.rename(folder, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def _remove_stale_siblings(final: Path) -> None:
    """Deletes temporary and trash folders of `final` that no run has written to lately."""
    now = time.time()
    for sibling in final.parent.glob(f".{final.name}.*"):
        try:
            touched = max(path.stat().st_mtime for path in [sibling, *sibling.glob("images/*")])
        except OSError:
            continue  # removed meanwhile by another process
        if now - touched > STALE_SECONDS:
            shutil.rmtree(sibling, ignore_errors=True)


def _move_into_place(temporary: Path, final: Path, header: Mapping[str, object]) -> None:
    """Renames `temporary` to `final`; if another process got there first, keeps theirs."""
    for _ in range(3):
        try:
            os.rename(temporary, final)
            return
        except OSError:
            if _is_complete(final, header):
                return  # lost the race to a complete world: the caller discards ours
            _remove_folder(final)  # an incomplete folder, not made by this function
    raise OSError(f"could not move the shapes world into place at {final}")


def ensure_shapes_world(
    cache_dir: str | Path | None = None,
    *,
    seed: int = 0,
    image_size: int = 64,
    counts: Mapping[str, int] | None = None,
) -> Path:
    """Generates the shapes world once and returns its folder.

    Args:
        cache_dir: folder that holds generated worlds; `default_cache_dir()` if None.
        seed: non-negative seed; the same seed gives byte-identical files.
        image_size: side of the square images in pixels, at least 32; the geometry
            scales with it.
        counts: images per split (`train`, `val`, `test`); missing splits take
            their `DEFAULT_COUNTS` value.

    Returns:
        `<cache_dir>/shapes-v<version>-seed{seed}-{image_size}px-{train}-{val}-{test}`,
        complete (version: GENERATOR_VERSION).
        An existing complete folder is returned untouched; an incomplete one (no
        manifest, or a file missing) is regenerated.

    Raises:
        ValueError: if the seed, image size or a count is invalid (the message names it).
    """
    counts = _check_arguments(seed, image_size, counts)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    final = root / _folder_name(seed, image_size, counts)
    header = _manifest_header(seed, image_size, counts)
    if _is_complete(final, header):
        return final
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_siblings(final)
    temporary = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=root))
    os.chmod(temporary, 0o755)  # mkdtemp makes it private; the world is a shared cache
    try:
        _write_world(temporary, seed, image_size, counts)
        _move_into_place(temporary, final, header)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return final


def main(argv: list[str] | None = None) -> None:
    """Command line entry point: generates the world and prints its folder."""
    parser = argparse.ArgumentParser(
        prog="python -m datasets.shapes", description="Generate the built-in shapes world."
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="cache folder (default: $MMZOO_DATA_DIR or ~/.cache/mmzoo/datasets)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=64)
    for split, count in DEFAULT_COUNTS.items():
        parser.add_argument(f"--{split}", type=int, default=count, help=f"{split} images")
    arguments = parser.parse_args(argv)
    counts = {split: getattr(arguments, split) for split in DEFAULT_COUNTS}
    try:
        folder = ensure_shapes_world(
            arguments.out, seed=arguments.seed, image_size=arguments.image_size, counts=counts
        )
    except ValueError as error:
        parser.error(str(error))
    print(folder)


if __name__ == "__main__":
    main()
