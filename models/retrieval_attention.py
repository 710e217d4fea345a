"""Cross-modal retrieval by text-guided attention over image regions (scored per pair)."""

import keras
import numpy as np
from keras import layers

from layers import PairwiseAttentionScore, PositionEmbedding
from models.image_encoders import build_image_encoder
from models.registry import register_model
from models.text_encoders import build_text_encoder, text_input

LOSSES = ("infonce", "vsepp")


@register_model(
    "retrieval_attention",
    task="retrieval",
    description="CNN regions + LSTM text + AttentionFusion per pair; InfoNCE or --loss vsepp.",
    training_defaults={"epochs": 3, "batch_size": 64, "learning_rate": 1e-3},
)
def build_retrieval_attention(
    *,
    vocabulary_size: int,
    sequence_length: int,
    image_size: int = 64,
    loss: str = "infonce",
    image_encoder: str = "small_cnn",
    text_encoder: str = "lstm",
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
    attention_dim: int = 256,
    joint_dim: int = 128,
    dropout: float = 0.1,
) -> keras.Model:
    """Builds {"image", "tokens" (or "text")} -> scores [B, B] (image rows, text columns).

    It nests "image_encoder" (image -> region features with grid positions
    [B, N, feature_dim]), "text_encoder" (tokens -> [B, text_units]) and the
    "pair_scorer" layer, which retrieval evaluation and export call directly.
    `loss` "infonce" learns a temperature on the scores; "vsepp" leaves raw
    cosines for the margin loss.
    """
    if loss not in LOSSES:
        raise ValueError(f"Unknown retrieval loss {loss!r}; expected one of {LOSSES}.")
    images = keras.Input((image_size, image_size, 3), name="image")
    backbone = build_image_encoder(
        image_encoder,
        image_size=image_size,
        feature_dim=feature_dim,
        weights=image_weights,
        trainable=not freeze_image_encoder,
        hub_output_key=hub_output_key,
        hub_input_range=hub_input_range,
        dropout=dropout,
    )
    regions = backbone(images)["regions"]
    regions = PositionEmbedding(regions.shape[1], name="region_positions")(regions)
    image_encoder_model = keras.Model(images, regions, name="image_encoder")

    tokens = text_input(text_encoder, sequence_length)
    text = build_text_encoder(
        text_encoder,
        vocabulary_size=vocabulary_size,
        sequence_length=sequence_length,
        embedding_dim=embedding_dim,
        units=text_units,
        dropout=dropout,
        word_vectors=word_vectors,
        preprocessor=text_preprocessor,
        hub_output_key=hub_output_key,
        trainable=not freeze_text_encoder,
    )(tokens)["pooled"]
    text = layers.Dropout(dropout)(text)
    text_encoder_model = keras.Model(tokens, text, name="text_encoder")

    scorer = PairwiseAttentionScore(
        attention_dim,
        joint_dim,
        initial_temperature=0.07 if loss == "infonce" else None,
        name="pair_scorer",
    )
    model_images = keras.Input((image_size, image_size, 3), name="image")
    model_tokens = text_input(text_encoder, sequence_length)
    scores = scorer(image_encoder_model(model_images), text_encoder_model(model_tokens))
    return keras.Model(
        {"image": model_images, model_tokens.name: model_tokens}, scores, name="retrieval_attention"
    )
