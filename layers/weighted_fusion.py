"""Fusion by a learned convex combination of the two projected modalities."""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="mmzoo")
class WeightedFusion(layers.Layer):
    """Projects both modalities to `projection_dim` and mixes them with learned weights.

    The two modality weights are the softmax of two learned logits (created in
    `build()`, starting at zero, that is an even mix), so they are positive and
    sum to 1 and the model learns how much to trust each modality. The logits
    and their softmax stay in float32 under mixed precision.

    Args:
        projection_dim: size of the shared space and of the output.
        activation: name of the Keras activation of the projections.

    Call arguments:
        image_features: float [B, D_i].
        text_features: float [B, D_t].
        training: unused; accepted so that every vector fusion is called the same way.

    Returns:
        float [B, projection_dim]: w_i * activation(W_i v) + w_t * activation(W_t t),
        with (w_i, w_t) = `modality_weights()`.

    Example:
        >>> WeightedFusion(projection_dim=8)(keras.ops.ones((2, 5)), keras.ops.ones((2, 3))).shape
        (2, 8)
    """

    def __init__(self, projection_dim: int, activation: str = "tanh", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(projection_dim, int) or projection_dim < 1:
            raise ValueError(
                f"WeightedFusion expects a positive integer projection_dim; "
                f"got projection_dim={projection_dim!r}."
            )
        try:
            keras.activations.get(activation)
        except ValueError as error:
            raise ValueError(f"WeightedFusion got an unknown activation={activation!r}.") from error
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
        self.modality_logits = self.add_weight(
            name="modality_logits",
            shape=(2,),
            initializer="zeros",
            dtype="float32",
            autocast=False,
        )

    def modality_weights(self):
        """Returns the float32 [2] softmax weights of (image, text)."""
        return keras.ops.softmax(keras.ops.cast(self.modality_logits, "float32"))

    def call(self, image_features, text_features, training=None):
        image_projected = self.image_projection(image_features)
        text_projected = self.text_projection(text_features)
        weights = keras.ops.cast(self.modality_weights(), image_projected.dtype)
        return weights[0] * image_projected + weights[1] * text_projected

    def compute_output_shape(self, image_features_shape, text_features_shape):
        return (*image_features_shape[:-1], self.projection_dim)

    def get_config(self):
        config = super().get_config()
        config.update(projection_dim=self.projection_dim, activation=self.activation)
        return config
