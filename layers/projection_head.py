"""CLIP-style projection head into a shared embedding space."""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="mmzoo")
class ProjectionHead(layers.Layer):
    """Projects features into a shared space: Dense -> GELU -> Dense, residual, LayerNorm.

    The output is L2-normalised so that dot products are cosine similarities.

    Args:
        projection_dim: size of the shared embedding space.
        dropout: dropout before the residual connection.
        normalize: L2-normalise the output.

    Call arguments:
        features: float [B, D].
        training: whether dropout runs.

    Returns:
        float [B, projection_dim].

    Example:
        >>> ProjectionHead(projection_dim=8)(keras.ops.ones((2, 5))).shape
        (2, 8)
    """

    def __init__(
        self, projection_dim: int = 128, dropout: float = 0.1, normalize: bool = True, **kwargs
    ):
        super().__init__(**kwargs)
        self.projection_dim = projection_dim
        self.dropout = dropout
        self.normalize = normalize
        self.projection = layers.Dense(projection_dim, name="projection")
        self.hidden = layers.Dense(projection_dim, name="hidden")
        self.dropout_layer = layers.Dropout(dropout)
        self.layer_norm = layers.LayerNormalization(name="layer_norm")

    def build(self, features_shape):
        self.projection.build(features_shape)
        projected = (*features_shape[:-1], self.projection_dim)
        self.hidden.build(projected)
        self.layer_norm.build(projected)

    def call(self, features, training=None):
        projected = self.projection(features)
        hidden = self.hidden(keras.activations.gelu(projected))
        outputs = self.layer_norm(projected + self.dropout_layer(hidden, training=training))
        if self.normalize:
            outputs = keras.ops.normalize(keras.ops.cast(outputs, "float32"), axis=-1)
        return outputs

    def compute_output_shape(self, features_shape):
        return (*features_shape[:-1], self.projection_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            projection_dim=self.projection_dim, dropout=self.dropout, normalize=self.normalize
        )
        return config
