"""Show and Tell (Vinyals et al. 2015): CNN encoder, LSTM decoder with the image as step 0."""

from collections.abc import Sequence

import keras
from keras import layers

from layers import ImageTextAlignmentLSTM
from models.image_encoders import build_image_encoder
from models.registry import register_model
from models.token_prior import set_next_token_prior


@register_model(
    "show_and_tell",
    task="captioning",
    description="CNN encoder -> LSTM decoder, image as the first step; greedy or beam search.",
    training_defaults={"epochs": 4, "batch_size": 64, "learning_rate": 1e-3},
)
def build_show_and_tell(
    *,
    vocabulary_size: int,
    sequence_length: int,
    image_size: int = 64,
    image_encoder: str = "small_cnn",
    image_weights: str | None = None,
    freeze_image_encoder: bool = False,
    hub_output_key: str | None = None,
    hub_input_range: str = "0to1",
    feature_dim: int = 256,
    embedding_dim: int = 128,
    units: int = 256,
    dropout: float = 0.2,
    token_log_prior: Sequence[float] | None = None,
) -> keras.Model:
    """Builds the teacher-forced captioner.

    The model maps {"image": [B, S, S, 3], "tokens": [B, T]} (the caption without
    its last token) to next-token logits [B, T, vocabulary_size]. It nests two
    models that decoding and export reuse: "image_encoder" (image -> features)
    and "caption_decoder" (features + tokens -> logits).

    `image_encoder` names the backbone (models.image_encoders.IMAGE_ENCODERS);
    its pooled vector is the decoder's first step. `token_log_prior` [vocabulary_size]
    starts the next-token bias at the training tokens' log frequencies
    (models.token_prior); None starts it at 0.
    """
    backbone = build_image_encoder(
        image_encoder,
        image_size=image_size,
        feature_dim=feature_dim,
        weights=image_weights,
        trainable=not freeze_image_encoder,
        hub_output_key=hub_output_key,
        hub_input_range=hub_input_range,
    )
    images = keras.Input((image_size, image_size, 3), name="image")
    pooled_encoder = keras.Model(
        images, {"image_features": backbone(images)["pooled"]}, name="image_encoder"
    )

    image_features = keras.Input((feature_dim,), name="image_features")
    tokens = keras.Input((sequence_length - 1,), dtype="int32", name="tokens")
    embedded = layers.Embedding(vocabulary_size, embedding_dim, name="token_embedding")(tokens)
    embedded = layers.Dropout(dropout)(embedded)
    aligned = ImageTextAlignmentLSTM(units, embedding_dim, unroll=True, name="alignment_lstm")(
        image_features, embedded, mask=keras.ops.not_equal(tokens, 0)
    )
    aligned = layers.Dropout(dropout)(aligned)
    next_token = layers.Dense(vocabulary_size, dtype="float32", name="next_token")
    logits = next_token(aligned)
    set_next_token_prior(next_token, token_log_prior)
    caption_decoder = keras.Model(
        {"image_features": image_features, "tokens": tokens}, logits, name="caption_decoder"
    )

    images = keras.Input((image_size, image_size, 3), name="image")
    caption_tokens = keras.Input((sequence_length - 1,), dtype="int32", name="tokens")
    features = pooled_encoder(images)
    outputs = caption_decoder({**features, "tokens": caption_tokens})
    return keras.Model({"image": images, "tokens": caption_tokens}, outputs, name="show_and_tell")
