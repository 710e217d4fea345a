"""Turns a --dataset SPEC into train/val/test splits of examples for a task.

SPEC is `shapes` (the built-in world; `shapes:TRAIN,VAL,TEST` sets the image
counts), a COCO captions `.json`, or a `.csv`/`.jsonl` table whose columns
depend on the task (DESIGN.md): `image,caption` for captioning and retrieval,
`image,text,label` for classification, `image,question,answer` for VQA.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from datasets.coco_captions import read_coco_captions
from datasets.examples import CaptionExamples
from datasets.labelled_pairs import LabelledPairs
from datasets.shapes import DEFAULT_COUNTS, ensure_shapes_world
from datasets.tabular import read_caption_table, read_labelled_table

SPLITS = ("train", "val", "test")
HELD_OUT_FRACTION = 0.1

Examples = CaptionExamples | LabelledPairs


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
    path = _existing(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return read_coco_captions(path, image_dir)
    if suffix in (".csv", ".jsonl"):
        return read_caption_table(path, image_dir)
    raise ValueError(
        f"Unsupported dataset {str(path)!r}: expected 'shapes', a COCO captions .json, "
        "or a .csv/.jsonl with image,caption columns."
    )


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise ValueError(f"Dataset file not found: {path}")
    return path


@dataclass(frozen=True)
class LabelledFormat:
    """Reads a classification or VQA table: which columns hold the text and the label."""

    text_column: str
    label_column: str

    def __call__(self, path: str | Path, image_dir: str | Path | None = None) -> LabelledPairs:
        path = _existing(path)
        if path.suffix.lower() not in (".csv", ".jsonl"):
            raise ValueError(
                f"Unsupported dataset {str(path)!r}: expected 'shapes' or a .csv/.jsonl with "
                f"image,{self.text_column},{self.label_column} columns."
            )
        return read_labelled_table(path, self.text_column, self.label_column, image_dir)


@dataclass(frozen=True)
class TaskData:
    """How one task reads its data: a file reader and the shapes world's file per split."""

    read_file: Callable[..., Examples]
    shapes_file: str

    def read_shapes(self, root: Path, split: str) -> Examples:
        return self.read_file(root / self.shapes_file.format(split=split))


TASK_DATA = {
    "captioning": TaskData(read_caption_file, "captions_{split}.json"),
    "retrieval": TaskData(read_caption_file, "captions_{split}.json"),
    "classification": TaskData(LabelledFormat("text", "label"), "matching_{split}.jsonl"),
    "vqa": TaskData(LabelledFormat("question", "answer"), "vqa_{split}.jsonl"),
}


def load_splits(
    task: str,
    dataset: str,
    val_dataset: str | None = None,
    test_dataset: str | None = None,
    *,
    seed: int = 0,
    image_dir: str | Path | None = None,
) -> dict[str, Examples]:
    """Loads train, val and test splits for `task`.

    `shapes` brings its own three splits. For a user file, val is `val_dataset`
    or else 10% of the training images held out (by `seed`), and test is
    `test_dataset` or else val.
    """
    if task not in TASK_DATA:
        raise ValueError(f"No data reader for task {task!r}; known: {sorted(TASK_DATA)}.")
    data = TASK_DATA[task]
    counts = parse_shapes_spec(dataset)
    if counts is not None:
        root = ensure_shapes_world(counts=counts)
        splits = {split: data.read_shapes(root, split) for split in SPLITS}
    else:
        train = data.read_file(dataset, image_dir)
        if val_dataset:
            val = data.read_file(val_dataset, image_dir)
        else:
            train, val = train.split(HELD_OUT_FRACTION, seed)
        splits = {"train": train, "val": val, "test": val}
    if val_dataset and counts is not None:
        splits["val"] = data.read_file(val_dataset, image_dir)
    if test_dataset:
        splits["test"] = data.read_file(test_dataset, image_dir)
    return splits


def load_caption_splits(
    dataset: str,
    val_dataset: str | None = None,
    test_dataset: str | None = None,
    *,
    seed: int = 0,
    image_dir: str | Path | None = None,
) -> dict[str, CaptionExamples]:
    """Caption splits (captioning and retrieval); see `load_splits`."""
    return load_splits(
        "captioning", dataset, val_dataset, test_dataset, seed=seed, image_dir=image_dir
    )
