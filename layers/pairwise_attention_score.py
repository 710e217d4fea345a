"""Scores every image against every text with text-guided attention over image regions."""

import keras
from keras import layers

from layers.attention_fusion import AttentionFusion
from layers.learned_temperature import add_logit_scale, apply_logit_scale


def unit_float32(vectors):
    """L2-normalised along the last axis, computed in float32."""
    return keras.ops.normalize(keras.ops.cast(vectors, "float32"), axis=-1)


@keras.saving.register_keras_serializable(package="mmzoo")
class PairwiseAttentionScore(layers.Layer):
    """Cross-modal similarity: each text attends over each image's regions.

    For an image i with regions v_in and a text vector q_j, AttentionFusion's
    additive attention (tanh(W_i v + W_t q) -> softmax over regions) pools the
    regions into a text-specific image vector a_ij; the score is the cosine of
    the projected a_ij and the projected q_j (the text-to-image attention of
    SCAN, Lee et al. 2018, with one query vector per text). The attention is
    evaluated by broadcasting, so the regions are projected once per image and
    the text once per text, not once per pair.

    With `initial_temperature`, scores are cosines times a learned scale
    (CLIP-style, clipped at `max_scale`) for InfoNCE; with None they are raw
    cosines in [-1, 1], as a margin loss (VSE++) needs.

    Args:
        attention_dim: size of the additive attention's hidden layer.
        embedding_dim: size of the joint space the cosine is taken in.
        initial_temperature: starting temperature of the learned scale, or None.
        max_scale: the largest allowed scale.

    Call arguments:
        image_regions: float [Bi, N, C].
        text_features: float [Bt, D].
        aligned: if True, Bi == Bt and only pair k (image k, text k) is scored.

    Returns:
        float32 scores [Bi, Bt] (image rows, text columns), or [B] when aligned.

    Example:
        >>> scorer = PairwiseAttentionScore(attention_dim=16, embedding_dim=8)
        >>> scorer(keras.ops.ones((3, 16, 32)), keras.ops.ones((5, 12))).shape
        (3, 5)
    """

    def __init__(
        self,
        attention_dim: int,
        embedding_dim: int,
        initial_temperature: float | None = 0.07,
        max_scale: float = 100.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("attention_dim", attention_dim), ("embedding_dim", embedding_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"PairwiseAttentionScore: {name} must be >= 1, got {value!r}.")
        if initial_temperature is not None and not initial_temperature > 0:
            raise ValueError(
                f"PairwiseAttentionScore: initial_temperature must be > 0 or None, "
                f"got {initial_temperature!r}."
            )
        self.attention_dim = attention_dim
        self.embedding_dim = embedding_dim
        self.initial_temperature = initial_temperature
        self.max_scale = max_scale
        self.attention = AttentionFusion(attention_dim, name="attention")
        self.image_projection = layers.Dense(embedding_dim, name="image_projection")
        self.text_projection = layers.Dense(embedding_dim, name="text_projection")

    def build(self, image_regions_shape, text_features_shape):
        self.attention.build(image_regions_shape, text_features_shape)
        self.image_projection.build((None, image_regions_shape[-1]))
        self.text_projection.build((None, text_features_shape[-1]))
        self.logit_scale = None
        if self.initial_temperature is not None:
            self.logit_scale = add_logit_scale(self, self.initial_temperature)

    def call(self, image_regions, text_features, aligned=False):
        attention = self.attention
        image_keys = attention.image_attention(image_regions)  # [Bi, N, A]
        text_query = attention.text_attention(text_features)  # [Bt, A]
        # Normalise in float32: in bfloat16 the norms come out 1 +- 0.005 (a logit at the
        # largest scale), and in float16 the epsilon clamp overflows.
        texts = unit_float32(self.text_projection(text_features))
        if aligned:
            hidden = keras.ops.tanh(image_keys + text_query[:, None, :])  # [B, N, A]
            weights = keras.ops.softmax(keras.ops.squeeze(attention.score(hidden), -1), axis=-1)
            pooled = keras.ops.einsum(
                "bn,bnc->bc", keras.ops.cast(weights, image_regions.dtype), image_regions
            )
            images = unit_float32(self.image_projection(pooled))
            scores = keras.ops.sum(images * texts, axis=-1)
        else:
            hidden = keras.ops.tanh(image_keys[:, None] + text_query[None, :, None, :])
            weights = keras.ops.softmax(keras.ops.squeeze(attention.score(hidden), -1), axis=-1)
            pooled = keras.ops.einsum(
                "ijn,inc->ijc", keras.ops.cast(weights, image_regions.dtype), image_regions
            )
            images = unit_float32(self.image_projection(pooled))
            scores = keras.ops.einsum("ije,je->ij", images, texts)
        if self.logit_scale is None:
            return scores
        return apply_logit_scale(self.logit_scale, self.max_scale, scores)

    def compute_output_shape(self, image_regions_shape, text_features_shape, aligned=False):
        if aligned:
            return (image_regions_shape[0],)
        return (image_regions_shape[0], text_features_shape[0])

    def compute_output_spec(self, image_regions, text_features, aligned=False):
        shape = self.compute_output_shape(image_regions.shape, text_features.shape, aligned)
        return keras.KerasTensor(shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            attention_dim=self.attention_dim,
            embedding_dim=self.embedding_dim,
            initial_temperature=self.initial_temperature,
            max_scale=self.max_scale,
        )
        return config
