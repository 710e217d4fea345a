"""Text-guided additive attention over image regions."""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="mmzoo")
class AttentionFusion(layers.Layer):
    """Attends over image regions with the text as the query, then fuses.

    Each region v_n is scored against the text vector q with additive
    attention, s_n = w^T tanh(W_i v_n + W_t q) (Bahdanau et al. 2015; the
    question-guided form of Yang et al. 2016, "Stacked Attention Networks").
    The weights a = softmax(s) over regions pool the regions into one vector,
    which is concatenated with q and, with `output_dim`, projected linearly.
    Scores and softmax are float32 whatever the dtype policy. Masked regions
    get exactly zero weight; a sample whose regions are all masked attends to
    nothing (all weights zero).

    Args:
        attention_dim: size of the additive attention's hidden layer.
        output_dim: size of the fused vector; None returns the concatenation.

    Call arguments:
        image_regions: float [B, N, C].
        text_features: float [B, D].
        mask: optional bool [B, N], False for regions to ignore (padding).

    Returns:
        A tuple (fused, attention_weights): fused is [B, output_dim] (or
        [B, C + D] without `output_dim`) in the compute dtype, and
        attention_weights is float32 [B, N], summing to 1 over regions, for
        visualisation.

    Example:
        >>> layer = AttentionFusion(attention_dim=16, output_dim=8)
        >>> fused, weights = layer(keras.ops.ones((2, 49, 32)), keras.ops.ones((2, 12)))
        >>> fused.shape, weights.shape
        ((2, 8), (2, 49))
    """

    def __init__(self, attention_dim: int, output_dim: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(attention_dim, int) or attention_dim < 1:
            raise ValueError(
                f"AttentionFusion expects a positive integer attention_dim; "
                f"got attention_dim={attention_dim!r}."
            )
        if output_dim is not None and (not isinstance(output_dim, int) or output_dim < 1):
            raise ValueError(
                f"AttentionFusion expects a positive integer or None for output_dim; "
                f"got output_dim={output_dim!r}."
            )
        self.attention_dim = attention_dim
        self.output_dim = output_dim
        self.supports_masking = True
        self.image_attention = layers.Dense(attention_dim, name="image_attention")
        # One bias is enough; the score has none because softmax ignores a shift.
        self.text_attention = layers.Dense(attention_dim, use_bias=False, name="text_attention")
        self.score = layers.Dense(1, use_bias=False, dtype="float32", name="score")
        self.output_projection = None
        if output_dim is not None:
            self.output_projection = layers.Dense(output_dim, name="output_projection")

    def build(self, image_regions_shape, text_features_shape):
        if len(image_regions_shape) != 3 or len(text_features_shape) != 2:
            raise ValueError(
                f"AttentionFusion expects image_regions [B, N, C] and text_features [B, D]; got "
                f"shapes {image_regions_shape} and {text_features_shape}."
            )
        self.image_attention.build(image_regions_shape)
        self.text_attention.build(text_features_shape)
        self.score.build((*image_regions_shape[:-1], self.attention_dim))
        if self.output_projection is not None:
            fused_width = image_regions_shape[-1] + text_features_shape[-1]
            self.output_projection.build((text_features_shape[0], fused_width))

    def call(self, image_regions, text_features, mask=None):
        query = keras.ops.expand_dims(self.text_attention(text_features), 1)
        hidden = keras.ops.tanh(self.image_attention(image_regions) + query)
        scores = keras.ops.squeeze(self.score(hidden), axis=-1)
        if mask is not None:
            mask = keras.ops.cast(mask, "bool")
            scores = keras.ops.where(mask, scores, -1e9)
        weights = keras.ops.softmax(scores, axis=-1)
        if mask is not None:
            weights = weights * keras.ops.cast(mask, weights.dtype)
        attended = keras.ops.einsum(
            "bn,bnc->bc", keras.ops.cast(weights, image_regions.dtype), image_regions
        )
        text_features = keras.ops.cast(text_features, attended.dtype)
        fused = keras.ops.concatenate([attended, text_features], axis=-1)
        if self.output_projection is not None:
            fused = self.output_projection(fused)
        return fused, weights

    def compute_mask(self, image_regions, text_features, mask=None):
        return None

    def compute_output_shape(self, image_regions_shape, text_features_shape):
        if self.output_dim is not None:
            width = self.output_dim
        elif image_regions_shape[-1] is None or text_features_shape[-1] is None:
            width = None
        else:
            width = image_regions_shape[-1] + text_features_shape[-1]
        return (image_regions_shape[0], width), tuple(image_regions_shape[:2])

    def compute_output_spec(self, image_regions, text_features, mask=None):
        fused_shape, weights_shape = self.compute_output_shape(
            image_regions.shape, text_features.shape
        )
        return (
            keras.KerasTensor(fused_shape, dtype=self.compute_dtype),
            keras.KerasTensor(weights_shape, dtype="float32"),
        )

    def get_config(self):
        config = super().get_config()
        config.update(attention_dim=self.attention_dim, output_dim=self.output_dim)
        return config
