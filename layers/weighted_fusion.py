"""Fusion by a learned convex combination of the two projected modalities."""

import keras

from layers.projected_pair import ProjectedPair


@keras.saving.register_keras_serializable(package="mmzoo")
class WeightedFusion(ProjectedPair):
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
        >>> fused = WeightedFusion(projection_dim=8)(keras.ops.ones((2, 5)), keras.ops.ones((2, 3)))
        >>> tuple(fused.shape)
        (2, 8)
    """

    def build(self, image_features_shape, text_features_shape):
        super().build(image_features_shape, text_features_shape)
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

    def combine(self, image_projected, text_projected):
        weights = keras.ops.cast(self.modality_weights(), image_projected.dtype)
        return weights[0] * image_projected + weights[1] * text_projected
