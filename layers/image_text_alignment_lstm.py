"""An LSTM that reads the image as its first step, then the words."""

import keras
from keras import layers

from layers.projected_input_lstm import ProjectedInputLSTM
from layers.time_slices import steps_from


@keras.saving.register_keras_serializable(package="mmzoo")
class ImageTextAlignmentLSTM(layers.Layer):
    """Aligns an image vector and a token sequence in one recurrent pass.

    The image feature vector is projected to the token embedding size and fed as
    time step 0; the embedded tokens follow. The output at each token position
    has seen the image and every token up to and including that one, which is
    what a captioner needs to predict the next word (Vinyals et al. 2015, "Show
    and Tell") and what image-text matching needs to judge the pair.

    Args:
        units: LSTM units.
        embedding_dim: size of the token embeddings; the image is projected to it.
        dropout: dropout on the LSTM inputs.
        unroll: unroll the time loop (faster on CPU for short fixed-length texts).

    Call arguments:
        image_features: float [B, D].
        token_embeddings: float [B, T, E].
        mask: optional bool [B, T] for the tokens (padding is False).
        training: whether dropout runs.

    Returns:
        float [B, T, units]: one aligned feature per token position.

    Example:
        >>> layer = ImageTextAlignmentLSTM(units=32, embedding_dim=16)
        >>> layer(keras.ops.zeros((2, 8)), keras.ops.zeros((2, 5, 16))).shape
        (2, 5, 32)
    """

    def __init__(
        self,
        units: int = 512,
        embedding_dim: int = 256,
        dropout: float = 0.0,
        unroll: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.unroll = unroll
        self.units = units
        self.embedding_dim = embedding_dim
        self.dropout = dropout
        self.image_projection = layers.Dense(embedding_dim, name="image_projection")
        # It reads the image first, so it runs after the image encoder with nothing
        # beside it: the two halves of the batch take the two cores.
        self.lstm = ProjectedInputLSTM(
            units,
            batch_halves=True,
            return_sequences=True,
            dropout=dropout,
            unroll=unroll,
            name="lstm",
        )

    def build(self, image_features_shape, token_embeddings_shape):
        if token_embeddings_shape[-1] != self.embedding_dim:
            raise ValueError(
                f"ImageTextAlignmentLSTM(embedding_dim={self.embedding_dim}) got token "
                f"embeddings of size {token_embeddings_shape[-1]}."
            )
        self.image_projection.build(image_features_shape)
        self.lstm.build((token_embeddings_shape[0], None, self.embedding_dim))

    def call(self, image_features, token_embeddings, mask=None, training=None):
        image_step = keras.ops.expand_dims(self.image_projection(image_features), 1)
        image_step = keras.ops.cast(image_step, token_embeddings.dtype)
        sequence = keras.ops.concatenate([image_step, token_embeddings], axis=1)
        sequence_mask = None
        if mask is not None:
            image_mask = keras.ops.ones_like(mask[:, :1], dtype="bool")
            sequence_mask = keras.ops.concatenate([image_mask, keras.ops.cast(mask, "bool")], 1)
        outputs = self.lstm(sequence, mask=sequence_mask, training=training)
        return steps_from(outputs, 1)

    def compute_output_shape(self, image_features_shape, token_embeddings_shape):
        return (*token_embeddings_shape[:2], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            embedding_dim=self.embedding_dim,
            dropout=self.dropout,
            unroll=self.unroll,
        )
        return config
