"""Image-text matching with the alignment LSTM: the image is step 0, then the words."""

import keras
import numpy as np
from keras import layers

from layers import ImageTextAlignmentLSTM
from models.image_encoders import build_image_encoder
from models.registry import register_model


def last_real_step(sequence, mask):
    """The features at each row's last True position of `mask` ([B, T, C] -> [B, C])."""
    lengths = keras.ops.sum(keras.ops.cast(mask, "int32"), axis=1)
    last = keras.ops.one_hot(keras.ops.maximum(lengths - 1, 0), keras.ops.shape(sequence)[1])
    return keras.ops.einsum("bt,btc->bc", keras.ops.cast(last, sequence.dtype), sequence)


@register_model(
    "image_text_alignment",
    task="classification",
    description="Alignment LSTM reads the image then the words; its last state -> match or not.",
    training_defaults={"epochs": 4, "batch_size": 64, "learning_rate": 1e-3},
)
def build_image_text_alignment(
    *,
    vocabulary_size: int,
    sequence_length: int,
    num_classes: int,
    image_size: int = 64,
    image_encoder: str = "small_cnn",
    image_weights: str | None = None,
    freeze_image_encoder: bool = False,
    hub_output_key: str | None = None,
    hub_input_range: str = "0to1",
    word_vectors: np.ndarray | None = None,
    embedding_dim: int = 128,
    feature_dim: int = 256,
    units: int = 256,
    hidden_dim: int = 256,
    dropout: float = 0.1,
) -> keras.Model:
    """Builds {"image": [B, S, S, 3], "tokens": [B, T]} -> logits [B, num_classes].

    The LSTM has seen the image and every word when it reaches the last real
    token, so its output there judges the whole pair (Karpathy and Fei-Fei's
    alignment of regions and words, here with the whole image as one region).
    """
    images = keras.Input((image_size, image_size, 3), name="image")
    tokens = keras.Input((sequence_length,), dtype="int32", name="tokens")
    image = build_image_encoder(
        image_encoder,
        image_size=image_size,
        feature_dim=feature_dim,
        weights=image_weights,
        trainable=not freeze_image_encoder,
        hub_output_key=hub_output_key,
        hub_input_range=hub_input_range,
        dropout=dropout,
    )(images)["pooled"]
    embedding = layers.Embedding(vocabulary_size, embedding_dim, name="token_embedding")
    embedded = layers.Dropout(dropout)(embedding(tokens))
    mask = keras.ops.not_equal(tokens, 0)
    aligned = ImageTextAlignmentLSTM(units, embedding_dim, unroll=True, name="alignment_lstm")(
        image, embedded, mask=mask
    )
    hidden = layers.Dense(hidden_dim, activation="relu", name="classifier_hidden")(
        last_real_step(aligned, mask)
    )
    logits = layers.Dense(num_classes, dtype="float32", name="logits")(
        layers.Dropout(dropout)(hidden)
    )
    model = keras.Model({"image": images, "tokens": tokens}, logits, name="image_text_alignment")
    if word_vectors is not None:
        if tuple(np.shape(word_vectors)) != (vocabulary_size, embedding_dim):
            raise ValueError(
                f"word_vectors has shape {tuple(np.shape(word_vectors))}; the token embedding "
                f"is {(vocabulary_size, embedding_dim)}."
            )
        embedding.embeddings.assign(np.asarray(word_vectors, dtype="float32"))
    return model
