"""Fusion by projecting both modalities to one space and averaging them."""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="mmzoo")
class AverageFusion(layers.Layer):
    """Projects the image and text vectors to `projection_dim` and averages them.

    Each modality has its own Dense layer with `activation`, so the two live in
    one space before the element-wise mean, which keeps the output on the
    scale of a single projection (within (-1, 1) for tanh).

    Args:
        projection_dim: size of the shared space and of the output.
        activation: name of the Keras activation of the projections.

    Call arguments:
        image_features: float [B, D_i].
        text_features: float [B, D_t].
        training: unused; accepted so that every vector fusion is called the same way.

    Returns:
        float [B, projection_dim]: (activation(W_i v) + activation(W_t t)) / 2.

    Example:
        >>> AverageFusion(projection_dim=8)(keras.ops.ones((2, 5)), keras.ops.ones((2, 3))).shape
        (2, 8)
    """

    def __init__(self, projection_dim: int, activation: str = "tanh", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(projection_dim, int) or projection_dim < 1:
            raise ValueError(
                f"AverageFusion expects a positive integer projection_dim; "
                f"got projection_dim={projection_dim!r}."
            )
        try:
            keras.activations.get(activation)
        except ValueError as error:
            raise ValueError(f"AverageFusion got an unknown activation={activation!r}.") from error
        self.projection_dim = projection_dim
        self.activation = activation
        self.image_projection = layers.Dense(
            projection_dim, activation=activation, name="image_projection"
        )
        self.text_projection = layers.Dense(
            projection_dim, activation=activation, name="text_projection"
        )

    def build(self, image_features_shape, text_features_shape):
        self.image_projection.build(image_features_shape)
        self.text_projection.build(text_features_shape)

    def call(self, image_features, text_features, training=None):
        projected = self.image_projection(image_features) + self.text_projection(text_features)
        return projected * keras.ops.cast(0.5, projected.dtype)

    def compute_output_shape(self, image_features_shape, text_features_shape):
        return (*image_features_shape[:-1], self.projection_dim)

    def get_config(self):
        config = super().get_config()
        config.update(projection_dim=self.projection_dim, activation=self.activation)
        return config
