"""Turns a --dataset SPEC into train/val/test splits of examples.

SPEC is `shapes` (the built-in world; `shapes:TRAIN,VAL,TEST` sets the image
counts), a COCO captions `.json`, or a `.csv`/`.jsonl` table.
"""

from pathlib import Path

from datasets.coco_captions import read_coco_captions
from datasets.examples import CaptionExamples
from datasets.shapes import DEFAULT_COUNTS, ensure_shapes_world
from datasets.tabular import read_caption_table

SPLITS = ("train", "val", "test")
HELD_OUT_FRACTION = 0.1


def parse_shapes_spec(spec: str) -> dict[str, int] | None:
    """Returns the split counts of a `shapes[:TRAIN,VAL,TEST]` spec, or None for other specs."""
    if spec == "shapes":
        return dict(DEFAULT_COUNTS)
    if not spec.startswith("shapes:"):
        return None
    parts = spec.removeprefix("shapes:").split(",")
    try:
        counts = [int(part) for part in parts]
    except ValueError:
        counts = []
    if len(counts) != 3 or min(counts) < 1:
        raise ValueError(f"Dataset spec {spec!r}: expected shapes:TRAIN,VAL,TEST with counts >= 1.")
    return dict(zip(SPLITS, counts, strict=True))


def read_caption_file(path: str | Path, image_dir: str | Path | None = None) -> CaptionExamples:
    """Reads one captions file by its suffix."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"Dataset file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return read_coco_captions(path, image_dir)
    if suffix in (".csv", ".jsonl"):
        return read_caption_table(path, image_dir)
    raise ValueError(
        f"Unsupported dataset {str(path)!r}: expected 'shapes', a COCO captions .json, "
        "or a .csv/.jsonl with image,caption columns."
    )


def load_caption_splits(
    dataset: str,
    val_dataset: str | None = None,
    test_dataset: str | None = None,
    *,
    seed: int = 0,
    image_dir: str | Path | None = None,
) -> dict[str, CaptionExamples]:
    """Loads train, val and test caption splits.

    `shapes` brings its own three splits. For a user file, val is `val_dataset`
    or else 10% of the training images held out (by `seed`), and test is
    `test_dataset` or else val.
    """
    counts = parse_shapes_spec(dataset)
    if counts is not None:
        root = ensure_shapes_world(counts=counts)
        splits = {split: read_coco_captions(root / f"captions_{split}.json") for split in SPLITS}
    else:
        train = read_caption_file(dataset, image_dir)
        if val_dataset:
            val = read_caption_file(val_dataset, image_dir)
        else:
            train, val = train.split(HELD_OUT_FRACTION, seed)
        test = read_caption_file(test_dataset, image_dir) if test_dataset else val
        splits = {"train": train, "val": val, "test": test}
    if val_dataset and counts is not None:
        splits["val"] = read_caption_file(val_dataset, image_dir)
    if test_dataset and counts is not None:
        splits["test"] = read_caption_file(test_dataset, image_dir)
    return splits
