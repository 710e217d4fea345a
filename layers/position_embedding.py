"""Learned position embeddings added to a sequence of features."""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="mmzoo")
class PositionEmbedding(layers.Layer):
    """Adds a learned vector per position to [B, N, C] features (BERT, ViT, DETR).

    Image regions from a CNN grid carry little absolute position; attention that
    pools them then forgets where things were. Adding a learned embedding per
    grid cell keeps "where" in the pooled vector.

    Args:
        sequence_length: the largest N the layer accepts.
        initializer: initializer of the [sequence_length, C] embedding table.

    Call arguments:
        features: float [B, N, C] with N <= sequence_length.

    Returns:
        features plus the embeddings of positions 0..N-1, same shape and dtype.

    Example:
        >>> layer = PositionEmbedding(sequence_length=16)
        >>> layer(keras.ops.zeros((2, 16, 8))).shape
        (2, 16, 8)
    """

    def __init__(self, sequence_length: int, initializer: str = "glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(sequence_length, int) or sequence_length < 1:
            raise ValueError(
                f"PositionEmbedding expects a positive integer sequence_length; "
                f"got {sequence_length!r}."
            )
        self.sequence_length = sequence_length
        self.initializer = initializer
        self.supports_masking = True

    def build(self, features_shape):
        if features_shape[1] is not None and features_shape[1] > self.sequence_length:
            raise ValueError(
                f"PositionEmbedding: {features_shape[1]} positions exceed sequence_length="
                f"{self.sequence_length}."
            )
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.sequence_length, features_shape[-1]),
            initializer=self.initializer,
        )

    def call(self, features):
        positions = keras.ops.shape(features)[1]
        embeddings = keras.ops.cast(self.embeddings[:positions], features.dtype)
        return features + embeddings[None]

    def compute_output_shape(self, features_shape):
        return tuple(features_shape)

    def get_config(self):
        config = super().get_config()
        config.update(sequence_length=self.sequence_length, initializer=self.initializer)
        return config
