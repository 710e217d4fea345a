"""Text backbones by name: recurrent (LSTM, BiLSTM, GRU) or transformer."""

import keras
import numpy as np

from layers import RecurrentTextEncoder, TransformerTextEncoder

TEXT_ENCODERS: tuple[str, ...] = ("lstm", "bilstm", "gru", "transformer")


def build_text_encoder(
    name: str = "lstm",
    *,
    vocabulary_size: int,
    sequence_length: int,
    embedding_dim: int = 128,
    units: int = 256,
    dropout: float = 0.1,
    word_vectors: np.ndarray | None = None,
    model_name: str = "text_backbone",
) -> keras.Model:
    """Builds a text backbone that maps token ids to per-token features and a pooled vector.

    The output width D is `units` for "lstm", "gru" and "bilstm" (whose two
    directions have `units // 2` each, so `units` must be even) and
    `embedding_dim` for "transformer" (two pre-norm blocks with heads of
    about 32 dimensions, e.g. 4 for 128 and 2 of 50 for 100, and `units` as the
    feed-forward size). Recurrent backbones pool with their final state, the transformer with
    the mean over real tokens.

    Args:
        name: one of TEXT_ENCODERS.
        vocabulary_size: number of token ids (id 0 is padding).
        sequence_length: length T of the "tokens" input.
        embedding_dim: token embedding size (and transformer width).
        units: recurrent output width, or the transformer's feed-forward size.
        dropout: dropout inside the encoder.
        word_vectors: optional float [vocabulary_size, embedding_dim] matrix,
            e.g. `WordVectors.matrix`, copied into the token embedding weights
            (it stays trainable and is not part of the model config).
        model_name: name of the returned model.

    Returns:
        A functional `keras.Model` named `model_name` with the input "tokens"
        int32 [B, sequence_length] and the outputs {"pooled": [B, D],
        "sequence": [B, sequence_length, D]}.

    Raises:
        ValueError: for an unknown name, an odd `units` for "bilstm", or
            `word_vectors` of the wrong shape.

    Example:
        >>> backbone = build_text_encoder("transformer", vocabulary_size=1000, sequence_length=16)
        >>> backbone(np.ones((2, 16), "int32"))["pooled"].shape
        TensorShape([2, 128])
    """
    if name not in TEXT_ENCODERS:
        raise ValueError(
            f"Unknown text encoder {name!r}. Valid text encoders: {', '.join(TEXT_ENCODERS)}."
        )
    if name == "bilstm" and units % 2:
        raise ValueError(f"The bilstm text encoder needs an even units (two halves); got {units}.")
    expected_shape = (vocabulary_size, embedding_dim)
    if word_vectors is not None and tuple(np.shape(word_vectors)) != expected_shape:
        raise ValueError(
            f"word_vectors has shape {tuple(np.shape(word_vectors))}, but the {name} text "
            f"encoder's token embedding has shape {expected_shape} "
            f"(vocabulary_size, embedding_dim)."
        )
    if name == "transformer":
        encoder = TransformerTextEncoder(
            vocabulary_size,
            sequence_length,
            embedding_dim=embedding_dim,
            num_heads=_attention_heads(embedding_dim),
            intermediate_dim=units,
            dropout=dropout,
            name="encoder",
        )
    else:
        encoder = RecurrentTextEncoder(
            vocabulary_size,
            embedding_dim,
            units // 2 if name == "bilstm" else units,
            cell="gru" if name == "gru" else "lstm",
            bidirectional=name == "bilstm",
            dropout=dropout,
            unroll=True,
            name="encoder",
        )
    tokens = keras.Input((sequence_length,), dtype="int32", name="tokens")
    outputs = encoder(tokens)
    model = keras.Model(
        tokens, {"pooled": outputs["pooled"], "sequence": outputs["sequence"]}, name=model_name
    )
    if word_vectors is not None:
        embedding = encoder.token_embedding if name == "transformer" else encoder.embedding
        embedding.embeddings.assign(np.asarray(word_vectors, dtype=embedding.embeddings.dtype))
    return model


def _attention_heads(embedding_dim: int) -> int:
    """The most heads of at least 32 dimensions that divide embedding_dim (at least one)."""
    heads = max(1, embedding_dim // 32)
    while embedding_dim % heads:
        heads -= 1
    return heads
