"""TFDS image-text datasets as our examples: `tfds:NAME[/CONFIG][:SPLIT]` specs.

A supported dataset has a pure mapping from one TFDS example (image left
encoded by `tfds.decode.SkipDecoding`) to our fields:

    coco_captions (captioning, retrieval): one element per image,
        {image_bytes: string, captions: string[None], image_id: int64}
    clevr (vqa): one element per question,
        {image_bytes: string, question: string, answer: string, image_id: string}

Every element also carries `image_key`, a string naming its image stably
(`tfds:coco_captions/2014#391895`, `tfds:clevr#CLEVR_val_000017.png`; the ids
are unique across each dataset's splits, so a key does not depend on the split
or slice read): `read_tfds_texts` returns the same keys, in the same order,
beside the texts and labels, so the in-memory side (vocabularies, references,
label counts) and the image stream line up.

Split part of the spec: any TFDS split expression over the dataset's own
splits (`train`, `validation[:500]`, `train+restval`). Without one, each of our
splits takes the dataset's default (`default_splits` in TFDS_DATASETS): train
reads `train`, val the dataset's validation split, test its test split, or its
validation split when the test split has no labels (CLEVR's test answers are
withheld). An explicit split is the split of whichever role the spec fills.

Nothing is downloaded unless asked (`download=True`): a dataset that is not
prepared under the data dir raises ValueError saying how to get it.
"""

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf
import tensorflow_datasets as tfds

SPEC_PREFIX = "tfds:"
ROLES = ("train", "val", "test")
METADATA_BATCH = 1024
_SPEC = re.compile(r"(?P<name>[a-z][a-z0-9_]*)(?:/(?P<config>[\w.\-]+))?(?::(?P<split>.+))?")
_SPLIT_NAME = re.compile(r"^\s*(?P<name>[\w\-]+)\s*(?:\[[^\]]*\])?\s*$")


def map_coco_captions(example: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """One COCO image with all its reference captions (5 or more in Karpathy's splits)."""
    ours = {"captions": example["captions"]["text"], "image_id": example["image/id"]}
    if "image" in example:
        ours["image_bytes"] = example["image"]
    return ours


def map_clevr(example: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """One CLEVR image -> one row per question about it (a leading question axis)."""
    questions = example["question_answer"]["question"]
    ours = {
        "question": questions,
        "answer": example["question_answer"]["answer"],
        "image_id": tf.fill(tf.shape(questions), example["file_name"]),
    }
    if "image" in example:
        ours["image_bytes"] = tf.fill(tf.shape(questions), example["image"])
    return ours


@dataclass(frozen=True)
class TfdsDataset:
    """How one TFDS dataset maps onto our features.

    Attributes:
        tasks: our task kinds it serves.
        features: the TFDS features read (a `tfds.decode.PartialDecoding` spec); the
            image is added for the stream and left out of the metadata pass.
        to_ours: pure mapping from one TFDS example to our fields.
        text_field: our field holding the texts (a list per image for captions).
        label_field: our field holding the labels; None for caption datasets.
        rows_per_example: `to_ours` gives a leading axis of rows (one per question)
            that the stream unbatches.
        splits: the dataset's own split names.
        default_splits: the TFDS split each of our splits reads without a :SPLIT.
        unlabelled_splits: splits whose labels are withheld; refused for training
            and evaluation.
    """

    tasks: tuple[str, ...]
    features: Mapping
    to_ours: Callable[[Mapping[str, tf.Tensor]], dict[str, tf.Tensor]]
    text_field: str
    label_field: str | None
    rows_per_example: bool
    splits: tuple[str, ...]
    default_splits: Mapping[str, str]
    unlabelled_splits: tuple[str, ...] = ()


TFDS_DATASETS = {
    "coco_captions": TfdsDataset(
        tasks=("captioning", "retrieval"),
        features={"image/id": True, "captions": {"text": True}},
        to_ours=map_coco_captions,
        text_field="captions",
        label_field=None,
        rows_per_example=False,
        splits=("train", "val", "test", "restval"),
        default_splits={"train": "train", "val": "val", "test": "test"},
    ),
    "clevr": TfdsDataset(
        tasks=("vqa",),
        features={"file_name": True, "question_answer": {"question": True, "answer": True}},
        to_ours=map_clevr,
        text_field="question",
        label_field="answer",
        rows_per_example=True,
        splits=("train", "validation", "test"),
        default_splits={"train": "train", "val": "validation", "test": "validation"},
        unlabelled_splits=("test",),
    ),
}


@dataclass(frozen=True)
class TfdsSpec:
    """A parsed `tfds:NAME[/CONFIG][:SPLIT]`; `config` and `split` are None when left out."""

    name: str
    config: str | None
    split: str | None

    @property
    def dataset(self) -> TfdsDataset:
        return TFDS_DATASETS[self.name]

    @property
    def builder_name(self) -> str:
        return self.name if self.config is None else f"{self.name}/{self.config}"

    def tfds_split(self, role: str) -> str:
        """The TFDS split read for our split `role` (train, val or test)."""
        if role not in ROLES:
            raise ValueError(f"Unknown split {role!r}; expected one of {list(ROLES)}.")
        return self.split if self.split is not None else self.dataset.default_splits[role]


@dataclass(frozen=True)
class TfdsCaptionTexts:
    """The text side of a caption split: one entry per image, in stream order."""

    image_keys: list[str]
    captions: list[list[str]]
    source: str

    def __len__(self) -> int:
        return len(self.image_keys)


@dataclass(frozen=True)
class TfdsLabelledTexts:
    """The text side of a labelled split: one entry per (image, text) row, in stream order."""

    image_keys: list[str]
    texts: list[str]
    labels: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.image_keys)


def is_tfds_spec(spec: str) -> bool:
    return spec.startswith(SPEC_PREFIX)


def supported_datasets() -> str:
    return ", ".join(f"{name} ({', '.join(entry.tasks)})" for name, entry in TFDS_DATASETS.items())


def parse_tfds_spec(spec: str) -> TfdsSpec:
    """Parses and checks `tfds:NAME[/CONFIG][:SPLIT]` against the supported datasets.

    Raises:
        ValueError: the spec is malformed, names an unsupported dataset or an
            unknown config, or its split names a split the dataset does not have.
    """
    match = _SPEC.fullmatch(spec.removeprefix(SPEC_PREFIX)) if is_tfds_spec(spec) else None
    if match is None:
        raise ValueError(
            f"Dataset spec {spec!r}: expected tfds:NAME[/CONFIG][:SPLIT], "
            "e.g. tfds:coco_captions or tfds:clevr:validation[:1000]."
        )
    name, config, split = match.group("name", "config", "split")
    if name not in TFDS_DATASETS:
        raise ValueError(
            f"Dataset spec {spec!r}: TFDS dataset {name!r} is not supported. Supported: "
            f"{supported_datasets()}. Another dataset's features would need a mapping onto "
            "ours (an entry in TFDS_DATASETS in datasets/tfds_source.py)."
        )
    if config is not None:
        configs = [builder_config.name for builder_config in tfds.builder_cls(name).BUILDER_CONFIGS]
        if config not in configs:
            raise ValueError(
                f"Dataset spec {spec!r}: {name} has no config {config!r}; "
                f"its configs: {configs or 'none'}."
            )
    parsed = TfdsSpec(name, config, split)
    if split is not None:
        _check_split(spec, parsed)
    return parsed


def _check_split(spec: str, parsed: TfdsSpec) -> None:
    known = parsed.dataset.splits
    for part in parsed.split.split("+"):
        match = _SPLIT_NAME.match(part)
        if match is None or match.group("name") not in known:
            raise ValueError(
                f"Dataset spec {spec!r}: split {part.strip()!r} is not one of {parsed.name}'s "
                f"splits {list(known)} (slices such as train[:10%] and unions a+b are allowed)."
            )


def check_task(spec: TfdsSpec, task: str) -> None:
    """Raises ValueError unless the dataset serves `task`."""
    if task not in spec.dataset.tasks:
        raise ValueError(
            f"TFDS dataset {spec.name!r} serves {', '.join(spec.dataset.tasks)}, not {task!r}. "
            f"Supported: {supported_datasets()}."
        )


def _check_labelled(spec: TfdsSpec, split: str) -> None:
    for part in split.split("+"):
        name = _SPLIT_NAME.match(part).group("name")
        if name in spec.dataset.unlabelled_splits:
            raise ValueError(
                f"tfds:{spec.builder_name}: split {name!r} has no labels (withheld by the "
                "dataset's authors); train and evaluate on "
                f"{[s for s in spec.dataset.splits if s not in spec.dataset.unlabelled_splits]}."
            )


def _read_tfds(
    spec: TfdsSpec, split: str, data_dir: str | Path | None, download: bool, with_image: bool
) -> tuple[tf.data.Dataset, str]:
    """The TFDS examples of `split` (read in a fixed order) and our image key prefix."""
    # TFDS reads TFDS_DATA_DIR once, at import; read it here so a later setting counts too.
    data_dir = data_dir if data_dir is not None else os.environ.get("TFDS_DATA_DIR")
    builder = tfds.builder(spec.builder_name, data_dir=None if data_dir is None else str(data_dir))
    features = dict(spec.dataset.features)
    decoders = None
    if with_image:
        features["image"] = True
        decoders = {"image": tfds.decode.SkipDecoding()}
    if download:
        builder.download_and_prepare()
    try:
        examples = builder.as_dataset(
            split=split,
            decoders=tfds.decode.PartialDecoding(features, decoders=decoders),
            shuffle_files=False,
        )
    except AssertionError as error:  # what TFDS raises when nothing is prepared there
        raise ValueError(missing_data_message(spec, builder)) from error
    config = builder.builder_config.name if builder.builder_config else None
    name = spec.name if config is None else f"{spec.name}/{config}"
    return examples, f"{SPEC_PREFIX}{name}#"


def missing_data_message(spec: TfdsSpec, builder: tfds.core.DatasetBuilder) -> str:
    return (
        f"TFDS dataset {spec.builder_name!r} is not prepared in {builder.data_dir_root} "
        f"(looked for {builder.data_dir}), and this program does not download it. On a "
        f"machine with internet run `tfds build {spec.builder_name} --data_dir DIR` (or "
        "tfds.load with download=True), copy DIR here, and pass --tfds-data-dir DIR or set "
        "the TFDS_DATA_DIR environment variable to DIR."
    )


def _with_key(ours: dict[str, tf.Tensor], key_prefix: str) -> dict[str, tf.Tensor]:
    image_id = ours["image_id"]
    if image_id.dtype != tf.string:
        image_id = tf.strings.as_string(image_id)
    return {**ours, "image_key": tf.strings.join([key_prefix, image_id])}


def _ours(
    spec: TfdsSpec,
    role: str,
    data_dir: str | Path | None,
    download: bool,
    task: str | None,
    with_image: bool,
) -> tuple[tf.data.Dataset, str]:
    if task is not None:
        check_task(spec, task)
    split = spec.tfds_split(role)
    _check_labelled(spec, split)
    examples, key_prefix = _read_tfds(spec, split, data_dir, download, with_image)
    mapping = spec.dataset.to_ours
    stream = examples.map(
        lambda example: _with_key(mapping(example), key_prefix),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if spec.dataset.rows_per_example:
        stream = stream.unbatch()
    return stream, f"{SPEC_PREFIX}{spec.builder_name}:{split}"


def load_tfds(
    spec: str,
    split: str = "train",
    data_dir: str | Path | None = None,
    *,
    download: bool = False,
    task: str | None = None,
) -> tf.data.Dataset:
    """Streams our split `split` of a TFDS dataset as our dicts, images still encoded.

    Args:
        spec: `tfds:NAME[/CONFIG][:SPLIT]`; an explicit SPLIT wins over `split`'s default.
        split: which of our splits (train, val, test) the stream feeds.
        data_dir: where the prepared dataset lies; None: TFDS_DATA_DIR, else
            ~/tensorflow_datasets.
        download: download and prepare it first when missing (needs internet).
        task: when given, ValueError unless the dataset serves this task.

    Returns:
        A tf.data.Dataset of the dataset's fields (module docstring) plus
        `image_key`, in a fixed order: the order of `read_tfds_texts`. Rows of one
        image (CLEVR's questions) each carry the image's bytes.

    Raises:
        ValueError: a bad spec or split, a task the dataset does not serve, or a
            dataset that is not prepared under the data dir (the message says how
            to get it).

    Example:
        >>> stream = load_tfds("tfds:coco_captions", "val", data_dir="/data/tfds")
        >>> image = tf.io.decode_image(next(iter(stream))["image_bytes"], channels=3)
    """
    stream, _ = _ours(parse_tfds_spec(spec), split, data_dir, download, task, with_image=True)
    return stream


def read_tfds_texts(
    spec: str,
    split: str = "train",
    data_dir: str | Path | None = None,
    *,
    download: bool = False,
    task: str | None = None,
) -> TfdsCaptionTexts | TfdsLabelledTexts:
    """The texts, labels and image keys of the split `load_tfds` streams, without images.

    The image feature is left out of the decoding (records are still read whole,
    so a pass over a large split costs one read of its files). Arguments and
    errors as `load_tfds`; also ValueError for an empty split.
    """
    parsed = parse_tfds_spec(spec)
    stream, source = _ours(parsed, split, data_dir, download, task, with_image=False)
    dataset = parsed.dataset
    fields = [dataset.text_field] + ([dataset.label_field] if dataset.label_field else [])
    columns = {name: [] for name in ("image_key", *fields)}
    stream = stream.map(lambda ours: {name: ours[name] for name in columns})
    for batch in stream.ragged_batch(METADATA_BATCH):
        for name, column in columns.items():
            column += _strings(batch[name])
    if not columns["image_key"]:
        raise ValueError(f"{source}: the split holds no examples.")
    if dataset.label_field is None:
        return TfdsCaptionTexts(columns["image_key"], columns[dataset.text_field], source)
    return TfdsLabelledTexts(
        columns["image_key"], columns[dataset.text_field], columns[dataset.label_field], source
    )


def _strings(values: tf.Tensor | tf.RaggedTensor) -> list:
    """Decodes a batch of UTF-8 strings (or of string lists) to Python."""
    if isinstance(values, tf.RaggedTensor):
        return [[value.decode("utf-8") for value in row] for row in values.to_list()]
    return [value.decode("utf-8") for value in values.numpy()]
