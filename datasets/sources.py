"""Turns a --dataset SPEC into train/val/test splits of examples for a task.

SPEC is `shapes` (the built-in world; `shapes:TRAIN,VAL,TEST` sets the image
counts) or a user file whose accepted forms depend on the task (DESIGN.md):

- captioning and retrieval: a folder of images with their captions
  (datasets/image_folder.py); a Flickr8k/30k token file, optionally
  `TOKENS:SPLIT_LIST` (datasets/flickr.py), recognised by content whatever
  its name; a COCO captions `.json`; a `.csv`/`.jsonl` with `image,caption`.
- classification: a `.csv`/`.jsonl` with `image,text,label`.
- vqa: a VQA v2 questions `.json`, optionally `QUESTIONS.json+ANNOTATIONS.json`
  (datasets/vqa_v2.py); a `.csv`/`.jsonl` with `image,question,answer`.
- every task: TFRecord shards written by convert_dataset.py
  (`'shards/train-*.tfrecord'`), or `tfds:NAME[/CONFIG][:SPLIT]`
  (datasets/tfds_source.py lists the supported TFDS datasets).
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from datasets.coco_captions import read_coco_captions
from datasets.examples import CaptionExamples
from datasets.flickr import is_flickr_token_file, parse_split_spec, read_flickr
from datasets.image_folder import read_image_folder
from datasets.labelled_pairs import LabelledPairs
from datasets.shapes import DEFAULT_COUNTS, ensure_shapes_world
from datasets.stream_sources import is_stream_spec, read_stream_spec
from datasets.tabular import read_caption_table, read_labelled_table
from datasets.vqa_v2 import parse_vqa_v2_spec, read_vqa_v2

SPLITS = ("train", "val", "test")
HELD_OUT_FRACTION = 0.1

Examples = CaptionExamples | LabelledPairs

CAPTION_FORMS = (
    "'shapes', a folder of images with captions.csv, captions.jsonl, captions.txt or a "
    "NAME.txt beside each image, a Flickr8k/30k token file of NAME#K<TAB>CAPTION lines "
    "(optionally TOKENS:SPLIT_LIST), a COCO captions .json, or a .csv/.jsonl with "
    "image,caption columns; for any task, TFRecord shards ('shards/train-*.tfrecord', "
    "from convert_dataset.py) or tfds:NAME[/CONFIG][:SPLIT]"
)
VQA_V2_FORM = (
    "a VQA v2 questions .json (its annotations beside it by the official naming, or "
    "QUESTIONS.json+ANNOTATIONS.json)"
)


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


def read_caption_file(spec: str | Path, image_dir: str | Path | None = None) -> CaptionExamples:
    """Reads captions from a folder, a Flickr token file, a COCO .json or a .csv/.jsonl.

    A Flickr token file is told by its first line, whatever its suffix; the
    others by being a folder or by their suffix.

    Raises:
        ValueError: naming the spec and listing every accepted form when it is
            none of them, or naming the file when it does not exist.
    """
    path = Path(spec)
    if path.is_dir():
        return read_image_folder(path, image_dir)
    if not path.exists():
        split = parse_split_spec(str(spec))
        if split is None:
            raise ValueError(f"Dataset file not found: {path}")
        tokens, split_list = split
        if not is_flickr_token_file(tokens):
            raise ValueError(
                f"Dataset spec {str(spec)!r}: a :SPLIT_LIST only follows a Flickr token file, "
                f"and the first line of {tokens} is not NAME#K<TAB>CAPTION."
            )
        return read_flickr(tokens, image_dir, split_list)
    if is_flickr_token_file(path):
        return read_flickr(path, image_dir)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return read_coco_captions(path, image_dir)
    if suffix in (".csv", ".jsonl"):
        return read_caption_table(path, image_dir)
    raise ValueError(f"Unsupported dataset {str(path)!r}: expected {CAPTION_FORMS}.")


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise ValueError(f"Dataset file not found: {path}")
    return path


@dataclass(frozen=True)
class LabelledFormat:
    """Reads a classification or VQA table: which columns hold the text and the label.

    Attributes:
        text_column: the column of the texts.
        label_column: the column of the labels.
        other_forms: the task's accepted forms besides `shapes` and the table,
            for the message on an unsupported file.
    """

    text_column: str
    label_column: str
    other_forms: str = ""

    def __call__(self, path: str | Path, image_dir: str | Path | None = None) -> LabelledPairs:
        path = _existing(path)
        if path.suffix.lower() not in (".csv", ".jsonl"):
            others = f", {self.other_forms}," if self.other_forms else ""
            raise ValueError(
                f"Unsupported dataset {str(path)!r}: expected 'shapes'{others} or a .csv/.jsonl "
                f"with image,{self.text_column},{self.label_column} columns."
            )
        return read_labelled_table(path, self.text_column, self.label_column, image_dir)


VQA_TABLE = LabelledFormat("question", "answer", VQA_V2_FORM)


def read_vqa_file(spec: str | Path, image_dir: str | Path | None = None) -> LabelledPairs:
    """Reads VQA examples from a VQA v2 questions .json (with its annotations) or a table."""
    files = parse_vqa_v2_spec(str(spec))
    if files is not None:
        return read_vqa_v2(*files, image_dir)
    return VQA_TABLE(spec, image_dir)


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
    "vqa": TaskData(read_vqa_file, "vqa_{split}.jsonl"),
}


def read_dataset(
    task: str,
    spec: str,
    role: str = "train",
    *,
    image_dir: str | Path | None = None,
    tfds_data_dir: str | Path | None = None,
) -> Examples:
    """Reads one user dataset (not `shapes`) as `task`'s examples for split `role`
    (the role picks a `tfds:` dataset's default split)."""
    if is_stream_spec(spec):
        return read_stream_spec(task, spec, role, tfds_data_dir)
    return TASK_DATA[task].read_file(spec, image_dir)


def load_splits(
    task: str,
    dataset: str,
    val_dataset: str | None = None,
    test_dataset: str | None = None,
    *,
    seed: int = 0,
    image_dir: str | Path | None = None,
    tfds_data_dir: str | Path | None = None,
) -> dict[str, Examples]:
    """Loads train, val and test splits for `task`.

    `shapes` brings its own three splits, and a `tfds:` dataset its own
    validation and test splits. For other data, val is `val_dataset` or else 10%
    of the training images held out (by `seed`), and test is `test_dataset` or
    else val.
    """
    if task not in TASK_DATA:
        raise ValueError(f"No data reader for task {task!r}; known: {sorted(TASK_DATA)}.")
    data = TASK_DATA[task]

    def read(spec: str, role: str) -> Examples:
        return read_dataset(task, spec, role, image_dir=image_dir, tfds_data_dir=tfds_data_dir)

    counts = parse_shapes_spec(dataset)
    if counts is not None:
        root = ensure_shapes_world(counts=counts)
        splits = {split: data.read_shapes(root, split) for split in SPLITS}
    elif dataset.startswith("tfds:"):
        splits = {role: read(dataset, role) for role in SPLITS}
    else:
        train = read(dataset, "train")
        if val_dataset:
            val = read(val_dataset, "val")
        else:
            train, val = train.split(HELD_OUT_FRACTION, seed)
        splits = {"train": train, "val": val, "test": val}
    if val_dataset and (counts is not None or dataset.startswith("tfds:")):
        splits["val"] = read(val_dataset, "val")
    if test_dataset:
        splits["test"] = read(test_dataset, "test")
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
