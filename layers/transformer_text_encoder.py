"""Token + position embeddings and a stack of pre-norm transformer encoder blocks."""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="mmzoo")
class TransformerTextEncoder(layers.Layer):
    """Encodes token ids with self-attention into per-token features and one pooled vector.

    Learned token and position embeddings are summed, then `num_layers`
    pre-norm encoder blocks run: `x + attention(norm(x))` followed by
    `x + feed_forward(norm(x))` (Dense -> GELU -> Dense), with dropout on each
    residual branch, and a final LayerNorm. Attention never looks at padding
    (token id 0). Padding positions of the "sequence" output are zeros, and
    "pooled" is the mean over real tokens, so appending padding changes neither;
    a text of only padding pools to zeros.

    Mixed precision: the residual stream, dropout, the attention (logits,
    softmax) and the pooling run in float32, and LayerNorm computes in float32
    internally; the embeddings and feed-forward networks follow the layer's
    dtype policy. The outputs have the layer's compute dtype.

    The token embedding is the sublayer `token_embedding` (a
    `keras.layers.Embedding`), so pretrained word vectors can be assigned to it.

    Args:
        vocabulary_size: number of token ids (id 0 is padding).
        sequence_length: the longest text the position embedding covers.
        embedding_dim: width of the embeddings and of every block.
        num_layers: number of encoder blocks.
        num_heads: attention heads; must divide `embedding_dim`.
        intermediate_dim: hidden size of the feed-forward networks.
        dropout: dropout on the embeddings, attention probabilities and residual branches.

    Call arguments:
        token_ids: int [B, T] with T <= sequence_length, 0 for padding.
        training: whether dropout runs.

    Returns:
        A dict with "sequence" [B, T, embedding_dim] and "pooled"
        [B, embedding_dim], the mean of "sequence" over the real tokens.

    Example:
        >>> encoder = TransformerTextEncoder(100, sequence_length=8, embedding_dim=16)
        >>> encoder(keras.ops.ones((2, 7), dtype="int32"))["pooled"].shape
        (2, 16)
    """

    def __init__(
        self,
        vocabulary_size: int,
        sequence_length: int,
        embedding_dim: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
        intermediate_dim: int = 256,
        dropout: float = 0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("vocabulary_size", vocabulary_size),
            ("sequence_length", sequence_length),
            ("embedding_dim", embedding_dim),
            ("num_layers", num_layers),
            ("num_heads", num_heads),
            ("intermediate_dim", intermediate_dim),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"TransformerTextEncoder expects a positive integer {name}; "
                    f"got {name}={value!r}."
                )
        if embedding_dim % num_heads:
            raise ValueError(
                f"TransformerTextEncoder needs num_heads to divide embedding_dim; got "
                f"embedding_dim={embedding_dim} and num_heads={num_heads}."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"TransformerTextEncoder expects 0 <= dropout < 1; got dropout={dropout!r}."
            )
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.embedding_dim = embedding_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        policy = self.dtype_policy
        self.token_embedding = layers.Embedding(
            vocabulary_size, embedding_dim, dtype=policy, name="token_embedding"
        )
        self.position_embedding = layers.Embedding(
            sequence_length, embedding_dim, dtype=policy, name="position_embedding"
        )
        self.dropout_layer = layers.Dropout(dropout, dtype="float32")
        self.attention_norms = []
        self.attentions = []
        self.feed_forward_norms = []
        self.feed_forward_intermediates = []
        self.feed_forward_outputs = []
        for index in range(num_layers):
            prefix = f"block_{index}"
            self.attention_norms.append(
                layers.LayerNormalization(dtype=policy, name=f"{prefix}_attention_norm")
            )
            self.attentions.append(
                layers.MultiHeadAttention(
                    num_heads,
                    embedding_dim // num_heads,
                    dropout=dropout,
                    dtype="float32",
                    name=f"{prefix}_attention",
                )
            )
            self.feed_forward_norms.append(
                layers.LayerNormalization(dtype=policy, name=f"{prefix}_feed_forward_norm")
            )
            self.feed_forward_intermediates.append(
                layers.Dense(
                    intermediate_dim,
                    activation="gelu",
                    dtype=policy,
                    name=f"{prefix}_feed_forward_intermediate",
                )
            )
            self.feed_forward_outputs.append(
                layers.Dense(embedding_dim, dtype=policy, name=f"{prefix}_feed_forward_output")
            )
        self.output_norm = layers.LayerNormalization(dtype=policy, name="output_norm")

    def build(self, token_ids_shape):
        self._check_length(token_ids_shape)
        self.token_embedding.build(token_ids_shape)
        self.position_embedding.build((token_ids_shape[1],))
        sequence_shape = (*token_ids_shape, self.embedding_dim)
        hidden_shape = (*token_ids_shape, self.intermediate_dim)
        for index in range(self.num_layers):
            self.attention_norms[index].build(sequence_shape)
            self.attentions[index].build(sequence_shape, sequence_shape)
            self.feed_forward_norms[index].build(sequence_shape)
            self.feed_forward_intermediates[index].build(sequence_shape)
            self.feed_forward_outputs[index].build(hidden_shape)
        self.output_norm.build(sequence_shape)

    def _check_length(self, token_ids_shape):
        if len(token_ids_shape) != 2:
            raise ValueError(
                f"TransformerTextEncoder expects token ids [B, T]; got shape {token_ids_shape}."
            )
        length = token_ids_shape[1]
        if length is not None and length > self.sequence_length:
            raise ValueError(
                f"TransformerTextEncoder got texts of length T={length}, longer than its "
                f"sequence_length={self.sequence_length}."
            )

    def call(self, token_ids, training=None):
        self._check_length(tuple(token_ids.shape))
        token_ids = keras.ops.cast(token_ids, "int32")
        mask = keras.ops.not_equal(token_ids, 0)
        positions = keras.ops.arange(keras.ops.shape(token_ids)[1], dtype="int32")
        embedded = self.token_embedding(token_ids) + self.position_embedding(positions)[None]
        hidden = self._residual_branch(embedded, training)
        # [B, 1, T]: every position attends to the real tokens only.
        attention_mask = mask[:, None, :]
        for index in range(self.num_layers):
            normed = self.attention_norms[index](hidden)
            attended = self.attentions[index](
                normed, normed, attention_mask=attention_mask, training=training
            )
            hidden = hidden + self._residual_branch(attended, training)
            normed = self.feed_forward_norms[index](hidden)
            update = self.feed_forward_outputs[index](
                self.feed_forward_intermediates[index](normed)
            )
            hidden = hidden + self._residual_branch(update, training)
        weights = keras.ops.cast(mask, "float32")[..., None]
        sequence = keras.ops.cast(self.output_norm(hidden), "float32") * weights
        count = keras.ops.maximum(keras.ops.sum(weights, axis=1), 1.0)
        pooled = keras.ops.sum(sequence, axis=1) / count
        return {
            "sequence": keras.ops.cast(sequence, self.compute_dtype),
            "pooled": keras.ops.cast(pooled, self.compute_dtype),
        }

    def _residual_branch(self, update, training):
        return self.dropout_layer(keras.ops.cast(update, "float32"), training=training)

    def compute_output_shape(self, token_ids_shape):
        return {
            "sequence": (*token_ids_shape, self.embedding_dim),
            "pooled": (token_ids_shape[0], self.embedding_dim),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size,
            sequence_length=self.sequence_length,
            embedding_dim=self.embedding_dim,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim,
            dropout=self.dropout,
        )
        return config
