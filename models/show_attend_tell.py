"""Show, Attend and Tell (Xu et al. 2015): an LSTM decoder attending over image regions."""

from collections.abc import Sequence

import keras
from keras import layers

from layers import SoftAttentionLSTMDecoder
from models.image_encoders import build_image_encoder
from models.registry import register_model
from models.token_prior import set_next_token_prior


@register_model(
    "show_attend_tell",
    task="captioning",
    description=(
        "CNN region grid -> LSTM decoder with soft attention over the regions at every step; "
        "beam search; the export can also return the attention maps."
    ),
    training_defaults={"epochs": 3, "batch_size": 64, "learning_rate": 1e-3},
    signatures=("serving_default", "caption_with_attention"),
)
def build_show_attend_tell(
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
    attention_dim: int = 128,
    attention_regularization: float = 0.05,
    dropout: float = 0.2,
    token_log_prior: Sequence[float] | None = None,
) -> keras.Model:
    """Builds the teacher-forced captioner with soft attention.

    The model maps {"image": [B, S, S, 3], "tokens": [B, T]} (the caption without
    its last token) to next-token logits [B, T, vocabulary_size]. It nests two
    models that decoding and export reuse: "image_encoder" (image ->
    {"image_regions": [B, N, C]}) and "caption_decoder" (image_regions + tokens
    -> {"logits": [B, T, V], "attention": float32 [B, T, N]}); with the
    attention, the captioning export adds the caption_with_attention signature.

    Args:
        vocabulary_size: output classes, reserved tokens included.
        sequence_length: tokens per caption with <start> and <end>; the model
            reads sequence_length - 1 of them.
        image_size: side of the square input images.
        image_encoder: a name of `models.image_encoders.IMAGE_ENCODERS`; its
            "regions" are attended over ("small_cnn": a 4x4 grid at 64 px).
        image_weights: None, "imagenet" or a weights file for the encoder.
        freeze_image_encoder: keep the encoder's backbone fixed.
        feature_dim: width of each region feature.
        embedding_dim: token embedding size, also that of the deep output.
        units: LSTM units.
        attention_dim: hidden size of the additive attention.
        attention_regularization: weight of the doubly stochastic attention
            penalty. The caption loss here is a mean over tokens, not the
            paper's sum over a caption, so the paper's 1 is about 1 / (words
            in a caption); 0.05 suits captions of ~20 tokens.
        dropout: dropout on the token embeddings and on the deep output.
        token_log_prior: [vocabulary_size] start of the next-token bias, the
            training tokens' log frequencies (models.token_prior); None: 0.
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
    region_encoder = keras.Model(
        images, {"image_regions": backbone(images)["regions"]}, name="image_encoder"
    )
    region_shape = region_encoder.output["image_regions"].shape[1:]

    image_regions = keras.Input(region_shape, name="image_regions")
    tokens = keras.Input((sequence_length - 1,), dtype="int32", name="tokens")
    embedded = layers.Embedding(vocabulary_size, embedding_dim, name="token_embedding")(tokens)
    embedded = layers.Dropout(dropout)(embedded)
    decoded = SoftAttentionLSTMDecoder(
        units,
        embedding_dim,
        attention_dim,
        attention_regularization=attention_regularization,
        name="attention_lstm",
    )(image_regions, embedded, mask=keras.ops.not_equal(tokens, 0))
    deep_output = layers.Dropout(dropout)(decoded["deep_output"])
    next_token = layers.Dense(vocabulary_size, dtype="float32", name="next_token")
    logits = next_token(deep_output)
    set_next_token_prior(next_token, token_log_prior)
    caption_decoder = keras.Model(
        {"image_regions": image_regions, "tokens": tokens},
        {"logits": logits, "attention": decoded["attention"]},
        name="caption_decoder",
    )

    images = keras.Input((image_size, image_size, 3), name="image")
    caption_tokens = keras.Input((sequence_length - 1,), dtype="int32", name="tokens")
    features = region_encoder(images)
    outputs = caption_decoder({**features, "tokens": caption_tokens})["logits"]
    return keras.Model(
        {"image": images, "tokens": caption_tokens}, outputs, name="show_attend_tell"
    )
