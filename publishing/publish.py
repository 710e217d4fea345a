"""Publishes the encoders of a train.py export as TF2 Hub reusable SavedModels.

An export version folder keeps the trained Keras model (assets.extra/model.keras),
its vocabulary and its model card. The image backbone and the text backbone
nested in the model (models.image_encoders, models.text_encoders) become
OUTPUT/image_encoder/ and OUTPUT/text_encoder/, each a SavedModel of
`publishing.hub_modules` with a README.md and a metadata.json beside it, that
`--image-encoder hub:OUTPUT/image_encoder` and `--text-encoder
hub:OUTPUT/text_encoder` (or `hub.KerasLayer`) load.
"""

import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import keras
import tensorflow as tf

import models  # noqa: F401  (importing registers every layer a saved model may hold)
from publishing.hub_modules import HubModule, ImageEncoderModule, TextEncoderModule
from serving.model_card import tensor_card

ENCODERS = ("image", "text")
BACKBONE_NAMES = {"image": "image_backbone", "text": "text_backbone"}
FOLDER_NAMES = {"image": "image_encoder", "text": "text_encoder"}
TRAIN_FLAGS = {"image": "--image-encoder", "text": "--text-encoder"}
# The model card's training flags that the backbones' input shapes must agree with.
CARD_SIZES = {"image": "image_size", "text": "sequence_length"}


@dataclass(frozen=True)
class PublishedEncoder:
    """One published encoder folder.

    Attributes:
        encoder: "image" or "text".
        path: the folder (OUTPUT/image_encoder or OUTPUT/text_encoder).
        metadata: what its metadata.json holds.
    """

    encoder: str
    path: Path
    metadata: dict

    @property
    def train_flag(self) -> str:
        """The train.py flag that builds a model on this encoder."""
        return f"{TRAIN_FLAGS[self.encoder]} hub:{self.path}"


@dataclass(frozen=True)
class TrainedExport:
    """What publishing reads from an export version folder.

    Attributes:
        version_dir: the folder holding saved_model.pb.
        model: the trained Keras model (assets.extra/model.keras).
        model_card: assets.extra/model_card.json, or {} when the export has none.
        vocabulary_file: assets.extra/vocabulary.txt (it may not exist).
    """

    version_dir: Path
    model: keras.Model
    model_card: dict
    vocabulary_file: Path

    @property
    def model_name(self) -> str:
        return self.model_card.get("model", self.model.name)


def version_folder(export_dir: str | Path) -> Path:
    """The version folder of `export_dir`: itself when it holds saved_model.pb, else its
    newest integer version (a saved_models/<model> folder); ValueError otherwise."""
    export_dir = Path(export_dir)
    if not export_dir.is_dir():
        raise ValueError(f"Export folder {export_dir} does not exist or is not a folder.")
    if (export_dir / "saved_model.pb").is_file():
        return export_dir
    versions = [entry for entry in export_dir.iterdir() if entry.name.isdigit() and entry.is_dir()]
    if not versions:
        raise ValueError(
            f"{export_dir} is not an export: it holds no saved_model.pb and no integer "
            "version folder (give saved_models/<model>/<version>)."
        )
    return max(versions, key=lambda entry: int(entry.name))


def read_export(export_dir: str | Path) -> TrainedExport:
    """Reads the trained model, model card and vocabulary of a train.py export.

    Raises:
        ValueError: a folder that is not an export, or an export without
            assets.extra/model.keras (exported before train.py kept the model).
    """
    version_dir = version_folder(export_dir)
    extra = version_dir / "assets.extra"
    model_file = extra / "model.keras"
    if not model_file.is_file():
        raise ValueError(
            f"Export {version_dir} has no assets.extra/model.keras: it was exported before "
            "train.py kept the trained Keras model. Train the model again to publish its "
            "encoders."
        )
    card_file = extra / "model_card.json"
    card = json.loads(card_file.read_text(encoding="utf-8")) if card_file.is_file() else {}
    try:
        model = keras.saving.load_model(model_file, compile=False)
    except Exception as error:
        raise ValueError(f"Cannot load {model_file}: {error}") from error
    return TrainedExport(version_dir, model, card, extra / "vocabulary.txt")


def find_backbones(model: keras.Model) -> dict[str, tuple[str, keras.Model]]:
    """Encoder ("image", "text") -> (path in the model, nested backbone) for those it has.

    The backbones are the nested models named BACKBONE_NAMES, found at any depth
    (dual_encoder nests them in its towers); two of one name raise ValueError.
    """
    found: dict[str, list[tuple[str, keras.Model]]] = {encoder: [] for encoder in ENCODERS}

    def walk(layer, path):
        for sublayer in getattr(layer, "layers", ()):
            sublayer_path = f"{path}/{sublayer.name}" if path else sublayer.name
            for encoder, name in BACKBONE_NAMES.items():
                if sublayer.name == name and isinstance(sublayer, keras.Model):
                    found[encoder].append((sublayer_path, sublayer))
            walk(sublayer, sublayer_path)

    walk(model, "")
    for encoder, backbones in found.items():
        if len(backbones) > 1:
            raise ValueError(
                f"Model {model.name!r} nests {len(backbones)} {BACKBONE_NAMES[encoder]!r} "
                f"models ({[path for path, _ in backbones]}); cannot tell which to publish."
            )
    return {encoder: backbones[0] for encoder, backbones in found.items() if backbones}


def check_output_dir(output_dir: Path) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"Output {output_dir} exists and is not a folder.")
    if output_dir.is_dir() and any(output_dir.iterdir()):
        raise ValueError(
            f"Output folder {output_dir} is not empty; refusing to overwrite it. "
            "Give a new or empty folder."
        )


def publish_encoders(
    export_dir: str | Path,
    output_dir: str | Path,
    encoders: tuple[str, ...] | None = None,
) -> list[PublishedEncoder]:
    """Writes the encoders of an export to output_dir/image_encoder/ and output_dir/text_encoder/.

    Every folder is written to a staging folder inside output_dir first and moved
    into place once all are complete, so a failure leaves output_dir empty.

    Args:
        export_dir: an export version folder written by train.py (or a model
            folder of versions: its newest).
        output_dir: a new or empty folder.
        encoders: which to publish, from ENCODERS; None publishes every one the
            model has.

    Returns:
        The published encoders, image first.

    Raises:
        ValueError: a bad export (see `read_export`), a non-empty output_dir, an
            encoder the model lacks (the message names the model and what it has),
            a text encoder without the export's vocabulary, or a backbone outside
            the encoder contracts.

    Example:
        >>> published = publish_encoders("saved_models/dual_encoder/1", "hub/dual_encoder")
        >>> [encoder.train_flag for encoder in published]
        ['--image-encoder hub:hub/dual_encoder/image_encoder',
         '--text-encoder hub:hub/dual_encoder/text_encoder']
    """
    output_dir = Path(output_dir)
    check_output_dir(output_dir)
    export = read_export(export_dir)
    backbones = find_backbones(export.model)
    wanted = tuple(backbones) if encoders is None else tuple(dict.fromkeys(encoders))
    if not wanted:
        raise ValueError(
            f"Nothing to publish: model {export.model_name!r} has no encoder asked for."
        )
    for encoder in wanted:
        if encoder not in ENCODERS:
            raise ValueError(f"Unknown encoder {encoder!r}; expected one of {ENCODERS}.")
        if encoder not in backbones:
            has = ", ".join(backbones) or "none"
            raise ValueError(
                f"Model {export.model_name!r} has no {encoder} encoder (no nested "
                f"{BACKBONE_NAMES[encoder]!r} model); it has: {has}."
            )
    modules = {encoder: build_module(export, encoder, *backbones[encoder]) for encoder in wanted}

    created = not output_dir.exists()
    staging_dir = output_dir / f".staging-{os.getpid()}"
    published = []
    try:
        for encoder, module in modules.items():
            folder = output_dir / FOLDER_NAMES[encoder]
            metadata = describe(export, encoder, backbones[encoder][0], module)
            write_module(module, staging_dir / folder.name, metadata)
            published.append(PublishedEncoder(encoder, folder, metadata))
        for encoder in published:
            os.replace(staging_dir / encoder.path.name, encoder.path)
    finally:
        shutil.rmtree(staging_dir, ignore_errors=True)
        if created and output_dir.is_dir() and not any(output_dir.iterdir()):
            output_dir.rmdir()
    return published


def build_module(export: TrainedExport, encoder: str, path: str, backbone: keras.Model):
    """The hub module of one backbone, checked against the model card's training flags."""
    if encoder == "image":
        module = ImageEncoderModule(backbone)
        size = module.image_size
    else:
        reads_strings = str(backbone.inputs[0].dtype) == "string"
        if not reads_strings and not export.vocabulary_file.is_file():
            raise ValueError(
                f"Export {export.version_dir} has no assets.extra/vocabulary.txt, which the "
                "text encoder needs."
            )
        module = TextEncoderModule(
            backbone,
            None if reads_strings else export.vocabulary_file,
            tokenizer=export.model_card.get("tokenizer", "word"),
        )
        # A hub text backbone's length is its own, not --sequence-length.
        size = None if reads_strings else module.sequence_length
    flag = CARD_SIZES[encoder]
    expected = export.model_card.get("training_settings", {}).get(flag)
    if None not in (expected, size) and int(expected) != size:
        raise ValueError(
            f"Export {export.version_dir}: the model card says {flag}={expected}, but the "
            f"model's {path} takes {size}; the export's files do not belong together."
        )
    return module


def describe(export: TrainedExport, encoder: str, path: str, module: HubModule) -> dict:
    """The metadata.json of a published encoder."""
    outputs = module.__call__.get_concrete_function(module.input_spec).structured_outputs
    outputs = outputs if isinstance(outputs, dict) else {"feature_vector": outputs}
    card = export.model_card
    metadata = {
        "format": "TF2 reusable SavedModel (https://www.tensorflow.org/hub/reusable_saved_models)",
        "encoder": encoder,
        "model": export.model_name,
        "task": card.get("task"),
        "backbone": path,
        "source_export": str(export.version_dir.resolve()),
        "source_git_commit": card.get("git_commit"),
        "source_exported_at": card.get("exported_at"),
        "inputs": {
            module.input_spec.name: tensor_card(module.input_spec.dtype, module.input_spec.shape)
        },
        "outputs": {key: tensor_card(value.dtype, value.shape) for key, value in outputs.items()},
        "output_dim": module.output_dim,
        "published_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
    }
    if encoder == "image":
        metadata["image_size"] = module.image_size
        metadata["input_range"] = [0.0, 1.0]
    else:
        metadata["sequence_length"] = module.sequence_length
        if module.vocabulary is not None:
            metadata["vocabulary_size"] = module.vocabulary.size
    return metadata


def write_module(module: HubModule, folder: Path, metadata: dict) -> None:
    """Saves the module with its serving_default signature, then metadata.json and README.md."""
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.serving_default})
    (folder / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    (folder / "README.md").write_text(readme(metadata), encoding="utf-8")


def readme(metadata: dict) -> str:
    """How to call a published encoder, for the README.md beside it."""
    encoder, model = metadata["encoder"], metadata["model"]
    if encoder == "image":
        size = metadata["image_size"]
        call = (
            f"`__call__(images, training=False)`: images float32 [None, {size}, {size}, 3] "
            f"in [0, 1] -> the pooled feature vector float32 [None, {metadata['output_dim']}]."
        )
        serving = "`serving_default`: `images` -> `default` [None, D]."
        example = f"encoder(tf.zeros([2, {size}, {size}, 3]))"
    else:
        length, width = metadata["sequence_length"], metadata["output_dim"]
        if "vocabulary_size" in metadata:
            preprocessing = (
                "lowercased, punctuation removed, split on whitespace and cut or padded to "
                f"{length} tokens inside the module; its vocabulary of "
                f"{metadata['vocabulary_size']} tokens is `assets/vocabulary.txt`"
            )
        else:
            preprocessing = "preprocessed inside the module by the hub module it was built on"
        call = (
            f"`__call__(texts, training=False)`: texts string [None] ({preprocessing}) -> "
            f"`default` and `pooled_output` float32 [None, {width}], `sequence_output` "
            f"float32 [None, {length}, {width}]."
        )
        serving = "`serving_default`: `texts` -> the same three outputs."
        example = 'encoder(tf.constant(["a red circle"]))["pooled_output"]'
    return f"""# {model}: {encoder} encoder

A TF2 reusable SavedModel (TF Hub format) of the {encoder} backbone of `{model}`,
published by publish_encoders.py from `{metadata["source_export"]}`.

- {call}
- `training=True` runs dropout and batch normalisation in training mode.
- {serving}
- `variables`, `trainable_variables`, `regularization_losses` for fine-tuning.

```python
import tensorflow as tf
import tensorflow_hub as hub

encoder = hub.load("PATH/TO/THIS/FOLDER")
{example}
```

Fine-tune it with `hub.KerasLayer("PATH/TO/THIS/FOLDER", trainable=True)` (tf-keras,
`TF_USE_LEGACY_KERAS=1`), with the zoo's Keras 3 `layers.HubLayer("PATH/TO/THIS/FOLDER",
trainable=True)`, or in a zoo model:
`python train.py --model NAME {TRAIN_FLAGS[encoder]} hub:PATH/TO/THIS/FOLDER`.
metadata.json has the shapes, the source model and the versions that wrote it.
"""
