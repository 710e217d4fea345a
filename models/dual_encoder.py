"""CLIP-style dual encoder: CNN image tower and LSTM text tower in one embedding space."""

import keras

from layers import ContrastiveLogits, ProjectionHead, RecurrentTextEncoder, SmallCNNEncoder
from models.registry import register_model


@register_model(
    "dual_encoder",
    task="retrieval",
    description="CNN + LSTM towers, projection heads, symmetric InfoNCE, learnable temperature.",
    training_defaults={"epochs": 3, "batch_size": 64, "learning_rate": 1e-3},
)
def build_dual_encoder(
    *,
    vocabulary_size: int,
    sequence_length: int,
    image_size: int = 64,
    feature_dim: int = 256,
    embedding_dim: int = 128,
    text_units: int = 256,
    projection_dim: int = 128,
    dropout: float = 0.1,
) -> keras.Model:
    """Builds the dual encoder.

    The model maps {"image": [B, S, S, 3], "tokens": [B, T]} to logits [B, B]
    scoring every image in the batch against every text. It nests the towers
    that retrieval and export use on their own: "image_encoder" (image ->
    L2-normalised embedding) and "text_encoder" (tokens -> embedding).
    """
    images = keras.Input((image_size, image_size, 3), name="image")
    pooled = SmallCNNEncoder(output_dim=feature_dim, dropout=dropout, name="cnn")(images)["pooled"]
    image_embedding = ProjectionHead(projection_dim, dropout, name="image_projection")(pooled)
    image_encoder = keras.Model(images, image_embedding, name="image_encoder")

    tokens = keras.Input((sequence_length,), dtype="int32", name="tokens")
    text = RecurrentTextEncoder(
        vocabulary_size, embedding_dim, text_units, dropout=dropout, unroll=True, name="text"
    )(tokens)["pooled"]
    text_embedding = ProjectionHead(projection_dim, dropout, name="text_projection")(text)
    text_encoder = keras.Model(tokens, text_embedding, name="text_encoder")

    model_images = keras.Input((image_size, image_size, 3), name="image")
    model_tokens = keras.Input((sequence_length,), dtype="int32", name="tokens")
    logits = ContrastiveLogits(name="logits")(
        image_encoder(model_images), text_encoder(model_tokens)
    )
    return keras.Model({"image": model_images, "tokens": model_tokens}, logits, name="dual_encoder")
