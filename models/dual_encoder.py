"""CLIP-style dual encoder: CNN image tower and LSTM text tower in one embedding space."""

import keras
import numpy as np

from layers import ContrastiveLogits, ProjectionHead
from models.image_encoders import build_image_encoder
from models.registry import register_model
from models.text_encoders import build_text_encoder, text_input


@register_model(
    "dual_encoder",
    task="retrieval",
    description="CNN + LSTM towers, projection heads, symmetric InfoNCE, learnable temperature.",
    training_defaults={"epochs": 3, "batch_size": 64, "learning_rate": 1e-3},
    signatures=("serving_default", "encode_image", "encode_text"),
)
def build_dual_encoder(
    *,
    vocabulary_size: int,
    sequence_length: int,
    image_size: int = 64,
    image_encoder: str = "small_cnn",
    image_weights: str | None = None,
    freeze_image_encoder: bool = False,
    freeze_text_encoder: bool = False,
    hub_output_key: str | None = None,
    hub_input_range: str = "0to1",
    text_encoder: str = "lstm",
    text_preprocessor: str | None = None,
    word_vectors: np.ndarray | None = None,
    feature_dim: int = 256,
    embedding_dim: int = 128,
    text_units: int = 256,
    projection_dim: int = 128,
    dropout: float = 0.1,
) -> keras.Model:
    """Builds the dual encoder.

    The model maps {"image": [B, S, S, 3], "tokens": [B, T]} (with a hub: text
    encoder, "text": string [B] instead of "tokens") to logits [B, B]
    scoring every image in the batch against every text. It nests the towers
    that retrieval and export use on their own: "image_encoder" (image ->
    L2-normalised embedding) and "text_encoder" (tokens -> embedding). The
    towers' backbones are chosen by name (models.image_encoders, models.text_encoders);
    each projects its pooled vector.
    """
    images = keras.Input((image_size, image_size, 3), name="image")
    pooled = build_image_encoder(
        image_encoder,
        image_size=image_size,
        feature_dim=feature_dim,
        weights=image_weights,
        trainable=not freeze_image_encoder,
        hub_output_key=hub_output_key,
        hub_input_range=hub_input_range,
        dropout=dropout,
    )(images)["pooled"]
    image_embedding = ProjectionHead(projection_dim, dropout, name="image_projection")(pooled)
    image_tower = keras.Model(images, image_embedding, name="image_encoder")

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
    text_embedding = ProjectionHead(projection_dim, dropout, name="text_projection")(text)
    text_tower = keras.Model(tokens, text_embedding, name="text_encoder")

    model_images = keras.Input((image_size, image_size, 3), name="image")
    model_tokens = text_input(text_encoder, sequence_length)
    logits = ContrastiveLogits(name="logits")(image_tower(model_images), text_tower(model_tokens))
    return keras.Model(
        {"image": model_images, model_tokens.name: model_tokens}, logits, name="dual_encoder"
    )
