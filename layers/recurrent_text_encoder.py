"""Embedding + recurrent text encoder (LSTM or GRU, optionally bidirectional)."""

import keras
from keras import layers

from layers.projected_input_lstm import ProjectedInputLSTM

CELLS = {"lstm": ProjectedInputLSTM, "gru": layers.GRU}


@keras.saving.register_keras_serializable(package="mmzoo")
class RecurrentTextEncoder(layers.Layer):
    """Encodes token ids into per-token features and one pooled vector.

    Args:
        vocabulary_size: number of token ids (id 0 is padding and is masked).
        embedding_dim: token embedding size.
        units: recurrent units (per direction).
        cell: "lstm" or "gru".
        bidirectional: read the text in both directions and concatenate.
        dropout: dropout on the embeddings.
        unroll: unroll the time loop (faster on CPU for short fixed-length texts).
        batch_halves: (one-direction LSTM only) run the two halves of the batch as
            two independent recurrences, for an encoder that nothing runs beside (a
            text-only model; `layers.ProjectedInputLSTM`). A bidirectional LSTM never
            does, even inside `batch_halves_while_tracing`: its two directions already
            take two cores.

    Call arguments:
        token_ids: int [B, T], 0 for padding.
        training: whether dropout runs.

    Returns:
        A dict with "sequence" [B, T, units * directions] and "pooled"
        [B, units * directions]: the final state of each direction, which
        ignores padding thanks to the mask.

    Example:
        >>> encoder = RecurrentTextEncoder(vocabulary_size=100, embedding_dim=16, units=32)
        >>> encoder(keras.ops.ones((2, 7), dtype="int32"))["pooled"].shape
        (2, 32)
    """

    def __init__(
        self,
        vocabulary_size: int,
        embedding_dim: int = 256,
        units: int = 256,
        cell: str = "lstm",
        bidirectional: bool = False,
        dropout: float = 0.0,
        unroll: bool = False,
        batch_halves: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.unroll = unroll
        if cell not in CELLS:
            raise ValueError(f"Unknown cell {cell!r}; expected one of {sorted(CELLS)}.")
        if batch_halves and (cell != "lstm" or bidirectional):
            raise ValueError(
                "batch_halves applies to the one-direction lstm cell, not to "
                f"{'a bidirectional ' if bidirectional else ''}{cell!r}."
            )
        self.batch_halves = batch_halves
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.cell = cell
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.embedding = layers.Embedding(
            vocabulary_size, embedding_dim, mask_zero=True, name="token_embedding"
        )
        self.embedding_dropout = layers.Dropout(dropout)
        halves = {}  # unset: the LSTM follows batch_halves_while_tracing
        if cell == "lstm" and (bidirectional or batch_halves):
            halves["batch_halves"] = not bidirectional
        recurrent = CELLS[cell](
            units, return_sequences=True, return_state=True, unroll=unroll, name=cell, **halves
        )
        self.recurrent = layers.Bidirectional(recurrent) if bidirectional else recurrent

    def build(self, token_ids_shape):
        self.embedding.build(token_ids_shape)
        self.recurrent.build((*token_ids_shape, self.embedding_dim))

    def call(self, token_ids, training=None):
        mask = keras.ops.not_equal(token_ids, 0)
        embedded = self.embedding_dropout(self.embedding(token_ids), training=training)
        outputs = self.recurrent(embedded, mask=mask, training=training)
        sequence, states = outputs[0], outputs[1:]
        directions = 2 if self.bidirectional else 1
        # LSTM returns (h, c) per direction, GRU returns h; keep the h of each direction.
        per_direction = len(states) // directions
        final = [states[index * per_direction] for index in range(directions)]
        pooled = final[0] if directions == 1 else keras.ops.concatenate(final, axis=-1)
        return {"sequence": sequence, "pooled": pooled}

    def compute_output_shape(self, token_ids_shape):
        width = self.units * (2 if self.bidirectional else 1)
        return {"sequence": (*token_ids_shape, width), "pooled": (token_ids_shape[0], width)}

    def get_config(self):
        config = super().get_config()
        config.update(
            vocabulary_size=self.vocabulary_size,
            embedding_dim=self.embedding_dim,
            units=self.units,
            cell=self.cell,
            bidirectional=self.bidirectional,
            dropout=self.dropout,
            unroll=self.unroll,
        )
        if self.batch_halves:  # left out when unset: older code still loads the model
            config["batch_halves"] = True
        return config
