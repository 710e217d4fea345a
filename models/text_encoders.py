"""Text backbones by name: recurrent (LSTM, BiLSTM, GRU) or transformer."""

import keras
import numpy as np

from layers import RecurrentTextEncoder, TransformerTextEncoder
from models.hub_encoders import build_hub_text_encoder, hub_handle

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
    preprocessor: str | None = None,
    hub_output_key: str | None = None,
    trainable: bool = True,
    runs_alone: bool = False,
) -> keras.Model:
    """Builds a text backbone that maps token ids to per-token features and a pooled vector.

    The output width D is `units` for "lstm", "gru" and "bilstm" (whose two
    directions have `units // 2` each, so `units` must be even) and
    `embedding_dim` for "transformer" (two pre-norm blocks with heads of
    about 32 dimensions, e.g. 4 for 128 and 2 of 50 for 100, and `units` as the
    feed-forward size). Recurrent backbones pool with their final state, the transformer with
    the mean over real tokens.

    "hub:HANDLE" loads a TF Hub module instead, which reads raw strings (the
    input "text", string [B]; see `text_input`), optionally through a
    `preprocessor` module (`models.hub_encoders.build_hub_text_encoder`); the
    vocabulary arguments do not apply to it.

    Args:
        name: one of TEXT_ENCODERS, or "hub:" and a URL, folder or .tar.gz.
        vocabulary_size: number of token ids (id 0 is padding).
        sequence_length: length T of the "tokens" input.
        embedding_dim: token embedding size (and transformer width).
        units: recurrent output width, or the transformer's feed-forward size.
        dropout: dropout inside the encoder.
        word_vectors: optional float [vocabulary_size, embedding_dim] matrix,
            e.g. `WordVectors.matrix`, copied into the token embedding weights
            (it stays trainable and is not part of the model config).
        model_name: name of the returned model.
        preprocessor: "hub:HANDLE" of a hub encoder's preprocessing module
            (`--text-preprocessor`), or None.
        hub_output_key: for a hub encoder with dict outputs, the pooled one (ignored
            by the named encoders).
        trainable: False keeps a hub encoder's weights fixed and runs it in inference
            mode (`--freeze-text-encoder`); the named encoders have no pretrained
            weights to keep (word vectors only start their embeddings), so they
            cannot be frozen.
        runs_alone: nothing runs beside the encoder (a text-only model, no image
            tower): "lstm" then runs the two halves of the batch as two independent
            recurrences, one a core (`layers.ProjectedInputLSTM`'s `batch_halves`; the
            other encoders ignore it).

    Returns:
        A functional `keras.Model` named `model_name` with the input "tokens"
        int32 [B, sequence_length] and the outputs {"pooled": [B, D],
        "sequence": [B, sequence_length, D], "mask": bool [B, sequence_length]
        (False at padding)}.

    Raises:
        ValueError: for an unknown name, an odd `units` for "bilstm", `word_vectors`
            of the wrong shape, or `trainable=False` for a named encoder.

    Example:
        >>> backbone = build_text_encoder("transformer", vocabulary_size=1000, sequence_length=16)
        >>> backbone(np.ones((2, 16), "int32"))["pooled"].shape
        TensorShape([2, 128])
    """
    handle = hub_handle(name)
    if handle is not None:
        if word_vectors is not None:
            raise ValueError(
                f"Text encoder {name!r} brings its own embeddings: --word-vectors does not apply."
            )
        return build_hub_text_encoder(
            handle,
            preprocessor=_preprocessor_handle(preprocessor),
            output_key=hub_output_key,
            trainable=trainable,
            dropout=dropout,
            model_name=model_name,
        )
    if not trainable:
        raise ValueError(
            f"--freeze-text-encoder applies to a hub: text encoder, not to {name!r}, "
            "which has no pretrained weights to keep."
        )
    if preprocessor is not None:
        raise ValueError(f"--text-preprocessor applies to a hub: text encoder, not to {name!r}.")
    if name not in TEXT_ENCODERS:
        raise ValueError(
            f"Unknown text encoder {name!r}. Valid text encoders: {', '.join(TEXT_ENCODERS)} "
            "or hub:HANDLE."
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
            batch_halves=runs_alone and name == "lstm",
            name="encoder",
        )
    tokens = keras.Input((sequence_length,), dtype="int32", name="tokens")
    outputs = encoder(tokens)
    mask = keras.ops.not_equal(tokens, 0)
    model = keras.Model(
        tokens,
        {"pooled": outputs["pooled"], "sequence": outputs["sequence"], "mask": mask},
        name=model_name,
    )
    if word_vectors is not None:
        embedding = encoder.token_embedding if name == "transformer" else encoder.embedding
        embedding.embeddings.assign(np.asarray(word_vectors, dtype=embedding.embeddings.dtype))
    return model


def text_input(text_encoder: str | None, sequence_length: int):
    """The model's text input for `text_encoder`: "text" string [B] for a hub encoder
    (which tokenizes itself), else "tokens" int32 [B, sequence_length]."""
    if hub_handle(text_encoder) is not None:
        return keras.Input((), dtype="string", name="text")
    return keras.Input((sequence_length,), dtype="int32", name="tokens")


def _preprocessor_handle(preprocessor: str | None) -> str | None:
    if preprocessor is None:
        return None
    handle = hub_handle(preprocessor)
    if handle is None:
        raise ValueError(
            f"--text-preprocessor {preprocessor!r}: write hub:URL or hub:PATH of a TF Hub "
            "preprocessing module."
        )
    return handle


def _attention_heads(embedding_dim: int) -> int:
    """The most heads of at least 32 dimensions that divide embedding_dim (at least one)."""
    heads = max(1, embedding_dim // 32)
    while embedding_dim % heads:
        heads -= 1
    return heads
