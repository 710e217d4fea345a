"""Similarity logits with a learnable temperature (CLIP)."""

import keras
from keras import layers

from layers.learned_temperature import add_logit_scale, apply_logit_scale


@keras.saving.register_keras_serializable(package="mmzoo")
class ContrastiveLogits(layers.Layer):
    """Scores every image against every text: exp(logit_scale) * images @ texts^T.

    The temperature is learned in log space, starts at 1 / `initial_temperature`
    and is clipped at `max_scale` as in CLIP (Radford et al. 2021). Computed in
    float32 whatever the dtype policy, because softmax over scaled cosines is
    sensitive to precision.

    Args:
        initial_temperature: the starting temperature (0.07 in CLIP).
        max_scale: the largest allowed 1 / temperature.

    Call arguments:
        image_embeddings: float [B, D], L2-normalised.
        text_embeddings: float [B, D], L2-normalised.

    Returns:
        float32 [B, B]: row i scores image i against every text.

    Example:
        >>> ContrastiveLogits()(keras.ops.eye(3), keras.ops.eye(3)).shape
        (3, 3)
    """

    def __init__(self, initial_temperature: float = 0.07, max_scale: float = 100.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_temperature = initial_temperature
        self.max_scale = max_scale

    def build(self, image_embeddings_shape, text_embeddings_shape):
        self.logit_scale = add_logit_scale(self, self.initial_temperature)

    def call(self, image_embeddings, text_embeddings):
        images = keras.ops.cast(image_embeddings, "float32")
        texts = keras.ops.cast(text_embeddings, "float32")
        scores = keras.ops.matmul(images, keras.ops.transpose(texts))
        return apply_logit_scale(self.logit_scale, self.max_scale, scores)

    def compute_output_shape(self, image_embeddings_shape, text_embeddings_shape):
        return (image_embeddings_shape[0], text_embeddings_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(initial_temperature=self.initial_temperature, max_scale=self.max_scale)
        return config
