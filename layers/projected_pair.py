"""The skeleton shared by fusions that project both modalities to one space, then combine them.

`ProjectedPair` is a base class, not a layer to use on its own: it is not
registered for serialization nor exported from `layers`. `SumFusion`,
`AverageFusion` and `WeightedFusion` subclass it and each adds only its
`combine` step (and `WeightedFusion` its modality weights).
"""

import keras
from keras import layers


class ProjectedPair(layers.Layer):
    """Projects image and text vectors to `projection_dim`, then combines the two projections.

    Each modality has its own Dense layer with `activation`, named
    `image_projection` and `text_projection`; a subclass defines `combine`.
    Argument errors name the subclass.

    Args:
        projection_dim: size of the shared space and of the output.
        activation: name of the Keras activation of the projections.

    Call arguments:
        image_features: float [B, D_i].
        text_features: float [B, D_t].
        training: unused; accepted so that every vector fusion is called the same way.

    Returns:
        float [B, projection_dim]: `combine(activation(W_i v), activation(W_t t))`.

    Example:
        >>> class Difference(ProjectedPair):
        ...     def combine(self, image_projected, text_projected):
        ...         return image_projected - text_projected
        >>> fused = Difference(projection_dim=8)(keras.ops.ones((2, 5)), keras.ops.ones((2, 3)))
        >>> tuple(fused.shape)
        (2, 8)
    """

    def __init__(self, projection_dim: int, activation: str = "tanh", **kwargs):
        super().__init__(**kwargs)
        name = type(self).__name__
        if not isinstance(projection_dim, int) or projection_dim < 1:
            raise ValueError(
                f"{name} expects a positive integer projection_dim; "
                f"got projection_dim={projection_dim!r}."
            )
        try:
            keras.activations.get(activation)
        except ValueError as error:
            raise ValueError(f"{name} got an unknown activation={activation!r}.") from error
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

    def combine(self, image_projected, text_projected):
        """Combines the two float [B, projection_dim] projections into the output.

        Args:
            image_projected: activation(W_i v), float [B, projection_dim].
            text_projected: activation(W_t t), float [B, projection_dim].

        Returns:
            float [B, projection_dim].
        """
        raise NotImplementedError(f"{type(self).__name__} must define combine().")

    def call(self, image_features, text_features, training=None):
        return self.combine(
            self.image_projection(image_features), self.text_projection(text_features)
        )

    def compute_output_shape(self, image_features_shape, text_features_shape):
        return (*image_features_shape[:-1], self.projection_dim)

    def get_config(self):
        config = super().get_config()
        config.update(projection_dim=self.projection_dim, activation=self.activation)
        return config
