"""Image + text -> one label: the fusion classifier, its unimodal baselines and VQA.

One builder encodes the image and/or the text with encoders chosen by name,
fuses them with a fusion chosen by name and classifies the fused vector; the
registered variants differ in which modalities they read, the default fusion
and the task. `image_only` and `text_only` read the same inputs as the fused
models but ignore one of them, so the gain from fusion is measured on the same
data (as MMF does).
"""

import functools

import keras
import numpy as np
from keras import layers

from models.fusions import FUSION_TRAINING_DEFAULTS, check_fusion, fuse
from models.image_encoders import build_image_encoder
from models.registry import register_model
from models.text_encoders import build_text_encoder, text_input

MODALITIES = ("both", "image", "text")
DEFAULT_FUSION = "concat"


def build_pair_classifier(
    *,
    vocabulary_size: int,
    sequence_length: int,
    num_classes: int,
    image_size: int = 64,
    modalities: str = "both",
    fusion: str | None = None,
    image_encoder: str | None = None,
    text_encoder: str | None = None,
    text_preprocessor: str | None = None,
    image_weights: str | None = None,
    freeze_image_encoder: bool = False,
    freeze_text_encoder: bool = False,
    hub_output_key: str | None = None,
    hub_input_range: str = "0to1",
    word_vectors: np.ndarray | None = None,
    embedding_dim: int = 128,
    feature_dim: int = 256,
    text_units: int = 256,
    hidden_dim: int = 256,
    dropout: float = 0.1,
    name: str = "pair_classifier",
) -> keras.Model:
    """Builds {"image": [B, S, S, 3], "tokens": [B, T]} -> logits [B, num_classes].

    With a hub: text encoder the text input is "text": string [B] instead of "tokens".

    Args:
        modalities: "both" fuses image and text; "image" or "text" reads only one.
        fusion: a name from models.fusions.FUSIONS; None is DEFAULT_FUSION. A variant
            fixes its own default (vqa: attention); --fusion overrides it.
        image_encoder, text_encoder: names from IMAGE_ENCODERS and TEXT_ENCODERS
            (None: small_cnn and lstm), or hub:HANDLE.
        text_preprocessor: hub:HANDLE of a hub text encoder's preprocessing module.
        hub_output_key, hub_input_range: for hub encoders (models.hub_encoders).
        image_weights: None, "imagenet" or a local weights file for the image backbone.
        freeze_image_encoder: keep the image backbone's weights fixed.
        freeze_text_encoder: keep a hub: text encoder's weights fixed.
        word_vectors: [vocabulary_size, embedding_dim] initial token embeddings.
    """
    if modalities not in MODALITIES:
        raise ValueError(f"Unknown modalities {modalities!r}; expected one of {MODALITIES}.")
    unused = {
        "fusion": fusion if modalities != "both" else None,
        "image_encoder": image_encoder if modalities == "text" else None,
        "image_weights": image_weights if modalities == "text" else None,
        "freeze_image_encoder": (freeze_image_encoder or None) if modalities == "text" else None,
        "text_encoder": text_encoder if modalities == "image" else None,
        "word_vectors": word_vectors if modalities == "image" else None,
        "text_preprocessor": text_preprocessor if modalities == "image" else None,
        "freeze_text_encoder": (freeze_text_encoder or None) if modalities == "image" else None,
    }
    for argument, value in unused.items():
        if value is not None:
            raise ValueError(
                f"{name} reads only the {modalities}: {argument}={value!r} does not apply to it."
            )
    fusion = fusion or DEFAULT_FUSION
    check_fusion(fusion)
    images = keras.Input((image_size, image_size, 3), name="image")
    tokens = text_input(text_encoder, sequence_length)
    if modalities != "text":
        image = build_image_encoder(
            image_encoder or "small_cnn",
            image_size=image_size,
            feature_dim=feature_dim,
            weights=image_weights,
            trainable=not freeze_image_encoder,
            hub_output_key=hub_output_key,
            hub_input_range=hub_input_range,
            dropout=dropout,
        )(images)
    if modalities != "image":
        text = build_text_encoder(
            text_encoder or "lstm",
            vocabulary_size=vocabulary_size,
            sequence_length=sequence_length,
            embedding_dim=embedding_dim,
            units=text_units,
            dropout=dropout,
            word_vectors=word_vectors,
            preprocessor=text_preprocessor,
            hub_output_key=hub_output_key,
            trainable=not freeze_text_encoder,
            runs_alone=modalities == "text",
        )(tokens)
    if modalities == "both":
        features = fuse(fusion, image, text, text["mask"], dim=hidden_dim, dropout=dropout)
    else:
        features = (image if modalities == "image" else text)["pooled"]
    hidden = layers.Dense(hidden_dim, activation="relu", name="classifier_hidden")(features)
    hidden = layers.Dropout(dropout)(hidden)
    logits = layers.Dense(num_classes, dtype="float32", name="logits")(hidden)
    return keras.Model({"image": images, tokens.name: tokens}, logits, name=name)


# 4 epochs of the 8000 shapes matching pairs (about 3 minutes of fit on 2 cores).
CLASSIFICATION_DEFAULTS = {"epochs": 4, "batch_size": 64, "learning_rate": 1e-3}
VQA_DEFAULTS = {"epochs": 6, "batch_size": 64, "learning_rate": 1e-3}


def register_variant(
    name: str, task: str, description: str, defaults: dict = CLASSIFICATION_DEFAULTS, **fixed
) -> None:
    """Registers build_pair_classifier with some arguments fixed (timm-style variants);
    a fixed argument is the variant's default, which the user's option overrides."""
    register_model(name, task, description, defaults, {"fusion": FUSION_TRAINING_DEFAULTS})(
        functools.partial(build_pair_classifier, name=name, **fixed)
    )


register_variant(
    "fusion_classifier",
    "classification",
    "image encoder + text encoder + --fusion (default concat) -> classifier.",
    fusion=DEFAULT_FUSION,
)
register_variant(
    "image_only",
    "classification",
    "Baseline: the image encoder alone -> classifier (the text is ignored).",
    modalities="image",
)
register_variant(
    "text_only",
    "classification",
    "Baseline: the text encoder alone -> classifier (the image is ignored).",
    modalities="text",
)
register_variant(
    "vqa",
    "vqa",
    "Question encoder + image regions + --fusion (default attention) -> answer classifier.",
    VQA_DEFAULTS,
    fusion="attention",
)
