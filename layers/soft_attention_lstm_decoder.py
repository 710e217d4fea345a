"""An LSTM caption decoder that attends over image regions at every step (soft attention)."""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="mmzoo")
class SoftAttentionLSTMDecoder(layers.Layer):
    """The soft-attention decoder of Xu et al. 2015, "Show, Attend and Tell".

    Before the first step the state is set from the mean region:
    h_0 = tanh(W_h mean(a)), c_0 = tanh(W_c mean(a)). At step t, with the
    previous hidden state h_{t-1} as the query, each region a_n is scored with
    additive attention, e_tn = w^T tanh(W_a a_n + U_a h_{t-1}); the weights
    alpha_t = softmax(e_t) pool the regions, and a gating scalar
    beta_t = sigmoid(w_b h_{t-1} + b_b) scales the pooled context,
    z_t = beta_t sum_n alpha_tn a_n. An LSTM cell reads [embedding_t, z_t].
    The deep output is tanh(L_h h_t + L_z z_t + embedding_t), of the embedding
    size, for a dense layer to turn into next-token logits.

    Inputs are teacher-forced: embedding_t embeds the token before the one
    step t predicts, so the output at t has seen the tokens up to and
    including t and never a later one. Padding steps (mask False) leave the
    state unchanged.

    The layer adds the paper's doubly stochastic attention penalty with
    `add_loss`: attention_regularization * sum_n (1 - sum_t alpha_tn)**2,
    summed over the real (unmasked) steps t and averaged over the batch. It
    pushes the model to look at every region over the course of a caption.
    Attention scores, weights and the penalty are float32 whatever the dtype
    policy.

    Args:
        units: LSTM units.
        embedding_dim: size of the token embeddings, and of the deep output.
        attention_dim: size of the additive attention's hidden layer.
        attention_regularization: weight of the doubly stochastic penalty
            (0 turns it off).

    Call arguments:
        image_regions: float [B, N, C], N regions of C features.
        token_embeddings: float [B, T, embedding_dim], T static.
        mask: optional bool [B, T], False for padding steps.
        training: passed to the sublayers.

    Returns:
        A dict with "deep_output" [B, T, embedding_dim] in the compute dtype and
        "attention" float32 [B, T, N], the weights over regions at each step
        (each row sums to 1).

    Example:
        >>> decoder = SoftAttentionLSTMDecoder(units=32, embedding_dim=8, attention_dim=16)
        >>> outputs = decoder(keras.ops.ones((2, 16, 24)), keras.ops.ones((2, 7, 8)))
        >>> outputs["deep_output"].shape, outputs["attention"].shape
        ((2, 7, 8), (2, 7, 16))
    """

    def __init__(
        self,
        units: int = 256,
        embedding_dim: int = 128,
        attention_dim: int = 128,
        attention_regularization: float = 1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("units", units),
            ("embedding_dim", embedding_dim),
            ("attention_dim", attention_dim),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"SoftAttentionLSTMDecoder expects a positive integer {name}; "
                    f"got {name}={value!r}."
                )
        if not attention_regularization >= 0:
            raise ValueError(
                "SoftAttentionLSTMDecoder expects attention_regularization >= 0; "
                f"got attention_regularization={attention_regularization!r}."
            )
        self.units = units
        self.embedding_dim = embedding_dim
        self.attention_dim = attention_dim
        self.attention_regularization = attention_regularization
        self.supports_masking = True
        self.initial_hidden = layers.Dense(units, activation="tanh", name="initial_hidden")
        self.initial_cell = layers.Dense(units, activation="tanh", name="initial_cell")
        self.region_attention = layers.Dense(attention_dim, name="region_attention")
        # One bias is enough; the score has none because softmax ignores a shift.
        self.hidden_attention = layers.Dense(attention_dim, use_bias=False, name="hidden_attention")
        self.score = layers.Dense(1, use_bias=False, dtype="float32", name="score")
        self.gate = layers.Dense(1, activation="sigmoid", name="context_gate")
        self.cell = layers.LSTMCell(units, name="lstm_cell")
        self.hidden_output = layers.Dense(embedding_dim, name="hidden_output")
        self.context_output = layers.Dense(embedding_dim, use_bias=False, name="context_output")

    def build(self, image_regions_shape, token_embeddings_shape):
        if len(image_regions_shape) != 3 or len(token_embeddings_shape) != 3:
            raise ValueError(
                "SoftAttentionLSTMDecoder expects image_regions [B, N, C] and token_embeddings "
                f"[B, T, E]; got shapes {image_regions_shape} and {token_embeddings_shape}."
            )
        if token_embeddings_shape[-1] != self.embedding_dim:
            raise ValueError(
                f"SoftAttentionLSTMDecoder(embedding_dim={self.embedding_dim}) got token "
                f"embeddings of size {token_embeddings_shape[-1]}."
            )
        if token_embeddings_shape[1] is None:
            raise ValueError(
                "SoftAttentionLSTMDecoder unrolls over a static number of steps; got "
                f"token_embeddings of shape {token_embeddings_shape} (T is None)."
            )
        batch, _, channels = image_regions_shape
        self.initial_hidden.build((batch, channels))
        self.initial_cell.build((batch, channels))
        self.region_attention.build(image_regions_shape)
        self.hidden_attention.build((batch, self.units))
        self.score.build((*image_regions_shape[:2], self.attention_dim))
        self.gate.build((batch, self.units))
        self.cell.build((batch, self.embedding_dim + channels))
        self.hidden_output.build((batch, self.units))
        self.context_output.build((batch, channels))

    def _attend(self, image_regions, projected_regions, hidden):
        """Gated context [B, C] and attention weights float32 [B, N] for one step."""
        query = keras.ops.expand_dims(self.hidden_attention(hidden), 1)
        scores = keras.ops.squeeze(self.score(keras.ops.tanh(projected_regions + query)), -1)
        weights = keras.ops.softmax(scores, axis=-1)
        context = keras.ops.einsum(
            "bn,bnc->bc", keras.ops.cast(weights, image_regions.dtype), image_regions
        )
        return self.gate(hidden) * context, weights

    def call(self, image_regions, token_embeddings, mask=None, training=None):
        token_embeddings = keras.ops.cast(token_embeddings, self.compute_dtype)
        image_regions = keras.ops.cast(image_regions, self.compute_dtype)
        mean_region = keras.ops.mean(image_regions, axis=1)
        hidden = self.initial_hidden(mean_region)
        cell_state = self.initial_cell(mean_region)
        projected_regions = self.region_attention(image_regions)
        steps = token_embeddings.shape[1]
        # Unstacked once: slicing step by step would make each step's gradient a full
        # [B, T, E] tensor, quadratic in T.
        step_embeddings = keras.ops.unstack(token_embeddings, steps, axis=1)
        step_masks = [None] * steps
        if mask is not None:
            step_masks = keras.ops.unstack(keras.ops.cast(mask, "bool")[:, :, None], steps, 1)
        hiddens, contexts, attention = [], [], []
        for step_embedding, keep in zip(step_embeddings, step_masks, strict=True):
            context, weights = self._attend(image_regions, projected_regions, hidden)
            inputs = keras.ops.concatenate([step_embedding, context], axis=-1)
            next_hidden, (_, next_cell_state) = self.cell(
                inputs, [hidden, cell_state], training=training
            )
            if keep is not None:
                next_hidden = keras.ops.where(keep, next_hidden, hidden)
                next_cell_state = keras.ops.where(keep, next_cell_state, cell_state)
            hidden, cell_state = next_hidden, next_cell_state
            hiddens.append(hidden)
            contexts.append(context)
            attention.append(weights)
        attention = keras.ops.stack(attention, axis=1)
        deep_output = keras.ops.tanh(
            self.hidden_output(keras.ops.stack(hiddens, axis=1))
            + self.context_output(keras.ops.stack(contexts, axis=1))
            + token_embeddings
        )
        if self.attention_regularization > 0:
            self.add_loss(self.attention_penalty(attention, mask))
        return {"deep_output": deep_output, "attention": attention}

    def attention_penalty(self, attention, mask=None):
        """The doubly stochastic penalty (a float32 scalar) for attention [B, T, N]."""
        attention = keras.ops.cast(attention, "float32")
        if mask is not None:
            attention = attention * keras.ops.cast(mask, "float32")[:, :, None]
        coverage = keras.ops.sum(attention, axis=1)
        per_caption = keras.ops.sum(keras.ops.square(1.0 - coverage), axis=-1)
        return self.attention_regularization * keras.ops.mean(per_caption)

    def compute_mask(self, image_regions, token_embeddings, mask=None):
        return None

    def compute_output_shape(self, image_regions_shape, token_embeddings_shape):
        return {
            "deep_output": (*token_embeddings_shape[:2], self.embedding_dim),
            "attention": (*token_embeddings_shape[:2], image_regions_shape[1]),
        }

    def compute_output_spec(self, image_regions, token_embeddings, mask=None, training=None):
        shapes = self.compute_output_shape(image_regions.shape, token_embeddings.shape)
        return {
            "deep_output": keras.KerasTensor(shapes["deep_output"], dtype=self.compute_dtype),
            "attention": keras.KerasTensor(shapes["attention"], dtype="float32"),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            embedding_dim=self.embedding_dim,
            attention_dim=self.attention_dim,
            attention_regularization=self.attention_regularization,
        )
        return config
