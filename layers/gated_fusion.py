"""Gated Multimodal Unit: a learned, per-unit gate between the two modalities."""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="mmzoo")
class GatedFusion(layers.Layer):
    """Fuses an image and a text vector with a Gated Multimodal Unit (GMU).

    Each modality is encoded, h_v = tanh(W_v v) and h_t = tanh(W_t t), and a
    gate computed from both inputs, z = sigmoid(W_z [v; t]), decides per unit
    how much of each to keep: out = z * h_v + (1 - z) * h_t (Arevalo et al.
    2017, "Gated Multimodal Units for Information Fusion", ICLR workshop).

    Args:
        output_dim: size of the hidden representations and of the output.

    Call arguments:
        image_features: float [B, D_i].
        text_features: float [B, D_t].
        training: unused; accepted so that every vector fusion is called the same way.

    Returns:
        float [B, output_dim].

    Example:
        >>> GatedFusion(output_dim=8)(keras.ops.ones((2, 5)), keras.ops.ones((2, 3))).shape
        (2, 8)
    """

    def __init__(self, output_dim: int, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(output_dim, int) or output_dim < 1:
            raise ValueError(
                f"GatedFusion expects a positive integer output_dim; got output_dim={output_dim!r}."
            )
        self.output_dim = output_dim
        self.image_projection = layers.Dense(output_dim, activation="tanh", name="image_projection")
        self.text_projection = layers.Dense(output_dim, activation="tanh", name="text_projection")
        self.gate = layers.Dense(output_dim, activation="sigmoid", name="gate")

    def build(self, image_features_shape, text_features_shape):
        self.image_projection.build(image_features_shape)
        self.text_projection.build(text_features_shape)
        both = image_features_shape[-1] + text_features_shape[-1]
        self.gate.build((*image_features_shape[:-1], both))

    def call(self, image_features, text_features, training=None):
        text_features = keras.ops.cast(text_features, image_features.dtype)
        gate = self.gate(keras.ops.concatenate([image_features, text_features], axis=-1))
        image_hidden = self.image_projection(image_features)
        text_hidden = self.text_projection(text_features)
        return gate * image_hidden + (1.0 - gate) * text_hidden

    def compute_output_shape(self, image_features_shape, text_features_shape):
        return (*image_features_shape[:-1], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(output_dim=self.output_dim)
        return config
