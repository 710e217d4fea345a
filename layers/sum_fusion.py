"""Fusion by projecting both modalities to one space and adding them."""

import keras

from layers.projected_pair import ProjectedPair


@keras.saving.register_keras_serializable(package="mmzoo")
class SumFusion(ProjectedPair):
    """Projects the image and text vectors to `projection_dim` and adds them.

    Each modality has its own Dense layer with `activation`, so the two live in
    one space before the element-wise sum.

    Args:
        projection_dim: size of the shared space and of the output.
        activation: name of the Keras activation of the projections.

    Call arguments:
        image_features: float [B, D_i].
        text_features: float [B, D_t].
        training: unused; accepted so that every vector fusion is called the same way.

    Returns:
        float [B, projection_dim]: activation(W_i v) + activation(W_t t).

    Example:
        >>> fused = SumFusion(projection_dim=8)(keras.ops.ones((2, 5)), keras.ops.ones((2, 3)))
        >>> tuple(fused.shape)
        (2, 8)
    """

    def combine(self, image_projected, text_projected):
        return image_projected + text_projected
