"""Late fusion by concatenation, optionally after projecting each modality."""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="mmzoo")
class ConcatFusion(layers.Layer):
    """Fuses an image vector and a text vector by concatenating them.

    With `projection_dim`, each modality first goes through its own linear
    Dense layer to `projection_dim`, so that neither dominates the fused vector
    just by being wider. Dropout is applied to the concatenation.

    Args:
        projection_dim: size of each modality's projection; None concatenates
            the features as they are.
        dropout: dropout rate on the fused vector.

    Call arguments:
        image_features: float [B, D_i].
        text_features: float [B, D_t].
        training: whether dropout runs.

    Returns:
        float [B, 2 * projection_dim], or [B, D_i + D_t] without projection.

    Example:
        >>> ConcatFusion(projection_dim=8)(keras.ops.ones((2, 5)), keras.ops.ones((2, 3))).shape
        (2, 16)
    """

    def __init__(self, projection_dim: int | None = None, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        valid_dim = isinstance(projection_dim, int) and projection_dim > 0
        if projection_dim is not None and not valid_dim:
            raise ValueError(
                f"ConcatFusion expects a positive integer or None for projection_dim; "
                f"got projection_dim={projection_dim!r}."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"ConcatFusion expects 0 <= dropout < 1; got dropout={dropout!r}.")
        self.projection_dim = projection_dim
        self.dropout = dropout
        self.image_projection = None
        self.text_projection = None
        if projection_dim is not None:
            self.image_projection = layers.Dense(projection_dim, name="image_projection")
            self.text_projection = layers.Dense(projection_dim, name="text_projection")
        self.dropout_layer = layers.Dropout(dropout)

    def build(self, image_features_shape, text_features_shape):
        if self.projection_dim is not None:
            self.image_projection.build(image_features_shape)
            self.text_projection.build(text_features_shape)

    def call(self, image_features, text_features, training=None):
        if self.projection_dim is not None:
            image_features = self.image_projection(image_features)
            text_features = self.text_projection(text_features)
        text_features = keras.ops.cast(text_features, image_features.dtype)
        fused = keras.ops.concatenate([image_features, text_features], axis=-1)
        return self.dropout_layer(fused, training=training)

    def compute_output_shape(self, image_features_shape, text_features_shape):
        if self.projection_dim is not None:
            width = 2 * self.projection_dim
        elif image_features_shape[-1] is None or text_features_shape[-1] is None:
            width = None
        else:
            width = image_features_shape[-1] + text_features_shape[-1]
        return (*image_features_shape[:-1], width)

    def get_config(self):
        config = super().get_config()
        config.update(projection_dim=self.projection_dim, dropout=self.dropout)
        return config
