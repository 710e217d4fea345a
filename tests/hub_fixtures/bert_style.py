"""A small BERT-style TF Hub pair (preprocessor + encoder), saved locally as test fixtures.

The real modules (e.g. https://tfhub.dev/tensorflow/bert_en_uncased_preprocess/3 and
https://tfhub.dev/tensorflow/small_bert/bert_en_uncased_L-2_H-128_A-2/2) cannot be downloaded
here; these follow the same conventions, so the code that loads Hub handles runs unchanged on
local folders.

Preprocessor (a TF2 SavedModel, `assets/vocab.txt` read through `tf.saved_model.Asset`):

* `__call__(strings)`: string[None] -> {"input_word_ids", "input_mask", "input_type_ids"},
  each int32[None, seq_length]: `[CLS] tokens... [SEP]`, truncated to seq_length, 0-padded,
  mask 1 on real tokens, type ids 0.
* `tokenize(strings)`: int32 ragged [B, (words), (pieces)]; this vocabulary is word level, so
  every word is one piece. `tokenize.get_special_tokens_dict()` gives vocab_size,
  start_of_sequence_id, end_of_segment_id, padding_id and mask_id; `tokenize.vocab_file` is the
  asset.
* `bert_pack_inputs(segments, seq_length=None)`: packs a list of one or two ragged token
  tensors (ragged rank 1 or 2) as `[CLS] a... [SEP] b... [SEP]` with type ids 0 then 1,
  trimming round robin like the real one; seq_length defaults to the preprocessor's.

Text is cleaned like BERT's uncased basic tokenizer (control characters dropped, whitespace
unified, lower-cased, every punctuation character its own token) with core TensorFlow ops only
(no tensorflow_text, no accent stripping), so a SavedModel embedding it runs in stock TF
Serving. Vocabulary ids: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4, then the words.

Encoder (a Reusable SavedModel, the TF2 Hub format): `__call__(inputs, training=False)`, traced
for training False and True, with `variables`, `trainable_variables` and
`regularization_losses`. Inputs: the preprocessor's dict (int32[None, None], at most
seq_length long). Outputs: "pooled_output" float32[B, H] (tanh dense on [CLS]), "default" (the
same), "sequence_output" float32[B, T, H] and "encoder_outputs" (one [B, T, H] per layer).
"""

import tempfile
from pathlib import Path

import tensorflow as tf

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(len(SPECIAL_TOKENS))
ENCODER_INPUT_KEYS = ("input_word_ids", "input_mask", "input_type_ids")
TYPE_VOCABULARY_SIZE = 2
MASK_ADDER = -10000.0

_WHITESPACE = r"[[:space:]\p{Z}]"
_CONTROL = r"[\p{Cc}\p{Cf}\x{FFFD}]"
_PUNCTUATION = r"([[:punct:]\pP])"


def split_text(strings: tf.Tensor) -> tf.RaggedTensor:
    """Cleans, lower-cases and splits string[B] into words and punctuation: string[B, (words)]."""
    strings = tf.strings.unicode_transcode(strings, "UTF-8", "UTF-8", errors="replace")
    strings = tf.strings.regex_replace(strings, _WHITESPACE, " ")
    strings = tf.strings.regex_replace(strings, _CONTROL, "")
    strings = tf.strings.lower(strings, encoding="utf-8")
    strings = tf.strings.regex_replace(strings, _PUNCTUATION, r" \1 ")
    return tf.strings.split(strings)


def bert_style_vocabulary(words: list[str]) -> list[str]:
    """The special tokens, then `words`, in id order; each word must be one token of its own."""
    words = list(words)
    reserved = sorted({word for word in words if word in SPECIAL_TOKENS})
    if reserved:
        raise ValueError(f"words: the special tokens {reserved} are added; leave them out.")
    duplicates = sorted({word for word in words if words.count(word) > 1})
    if duplicates:
        raise ValueError(f"words: duplicated {duplicates}.")
    if words:
        split = split_text(tf.constant(words)).to_list()
        unreachable = [
            word for word, parts in zip(words, split, strict=True) if parts != [word.encode()]
        ]
        if unreachable:
            raise ValueError(
                f"words: {unreachable} are not single lower-case tokens, so no text maps to them."
            )
    return [*SPECIAL_TOKENS, *words]


def _round_robin_counts(lengths: list[tf.Tensor], budget: tf.Tensor) -> list[tf.Tensor]:
    """How many tokens of each segment fit in `budget`, taken one per segment in turn.

    This is the real preprocessor's RoundRobinTrimmer. `lengths` are int64[B, 1]; token
    `position` of segment `index` comes after min(l_j, position + [j < index]) tokens of each
    segment j, and is kept if fewer than `budget` come before it.
    """
    positions = tf.range(budget)[tf.newaxis]
    counts = []
    for index, length in enumerate(lengths):
        taken_before = tf.add_n(
            [
                tf.minimum(positions + int(other < index), other_length)
                for other, other_length in enumerate(lengths)
            ]
        )
        fits = (positions < length) & (taken_before < budget)
        counts.append(tf.reduce_sum(tf.cast(fits, tf.int64), axis=1, keepdims=True))
    return counts


def bert_pack_inputs(
    segments: list[tf.RaggedTensor], seq_length: int | tf.Tensor
) -> dict[str, tf.Tensor]:
    """Packs token segments as `[CLS] a... [SEP] b... [SEP]`, padded to int32[B, seq_length]."""
    if not segments:
        raise ValueError("bert_pack_inputs: needs at least one segment.")
    room = len(segments) + 1
    static_length = seq_length if isinstance(seq_length, int) else None
    if static_length is not None and static_length < room:
        raise ValueError(
            f"bert_pack_inputs: seq_length={seq_length} leaves no room for [CLS] and "
            f"{len(segments)} [SEP]."
        )
    seq_length = tf.cast(seq_length, tf.int64)
    if static_length is None:
        tf.debugging.assert_greater_equal(
            seq_length,
            tf.constant(room, tf.int64),
            message="bert_pack_inputs: seq_length too short",
        )
    flat = [tf.cast(segment.merge_dims(1, -1), tf.int32) for segment in segments]
    budget = tf.maximum(seq_length - room, 0)
    counts = _round_robin_counts([segment.row_lengths()[:, tf.newaxis] for segment in flat], budget)
    batch = flat[0].nrows()
    column = tf.ones(tf.stack([batch, 1]), tf.int32)
    positions = tf.range(budget)[tf.newaxis]
    word_ids, type_ids, kept = [column * CLS_ID], [column * 0], [column > 0]
    for type_id, (segment, count) in enumerate(zip(flat, counts, strict=True)):
        word_ids += [segment.to_tensor(PAD_ID, shape=tf.stack([batch, budget])), column * SEP_ID]
        type_ids += [tf.fill(tf.stack([batch, budget + 1]), type_id)]
        kept += [tf.broadcast_to(positions < count, tf.stack([batch, budget])), column > 0]
    kept = tf.concat(kept, axis=1)
    lengths = tf.reduce_sum(tf.cast(kept, tf.int64), axis=1)
    shape = [None, static_length]

    def left_aligned(pieces):
        values = tf.boolean_mask(tf.concat(pieces, axis=1), kept)
        packed = tf.RaggedTensor.from_row_lengths(values, lengths, validate=False)
        return tf.ensure_shape(packed.to_tensor(0, shape=tf.stack([batch, seq_length])), shape)

    return {
        "input_word_ids": left_aligned(word_ids),
        "input_mask": tf.ensure_shape(tf.sequence_mask(lengths, seq_length, tf.int32), shape),
        "input_type_ids": left_aligned(type_ids),
    }


class BertStyleTokenizer(tf.Module):
    """Maps string[B] to int32 ragged [B, (words), (pieces)] with a vocabulary file.

    Args:
        vocab_file: one token per line; the line number is the id.
    """

    def __init__(self, vocab_file: str | Path, name: str | None = None):
        super().__init__(name=name)
        self.vocab_size = len(Path(vocab_file).read_text(encoding="utf-8").splitlines())
        self.vocab_file = tf.saved_model.Asset(str(vocab_file))
        initializer = tf.lookup.TextFileInitializer(
            self.vocab_file,
            tf.string,
            tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64,
            tf.lookup.TextFileIndex.LINE_NUMBER,
        )
        self._table = tf.lookup.StaticHashTable(initializer, default_value=UNK_ID)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="strings")])
    def __call__(self, strings: tf.Tensor) -> tf.RaggedTensor:
        words = split_text(strings)
        ids = tf.cast(self._table.lookup(words.flat_values), tf.int32)
        pieces = tf.RaggedTensor.from_row_lengths(ids, tf.ones_like(ids, tf.int64), validate=False)
        return words.with_flat_values(pieces)

    @tf.function(input_signature=[])
    def get_special_tokens_dict(self) -> dict[str, tf.Tensor]:
        return {
            "vocab_size": tf.constant(self.vocab_size, tf.int32),
            "start_of_sequence_id": tf.constant(CLS_ID, tf.int32),
            "end_of_segment_id": tf.constant(SEP_ID, tf.int32),
            "padding_id": tf.constant(PAD_ID, tf.int32),
            "mask_id": tf.constant(MASK_ID, tf.int32),
        }


class BertStylePacker(tf.Module):
    """`bert_pack_inputs` with a default seq_length, callable as `packer(segments, seq_length)`."""

    def __init__(self, seq_length: int, name: str | None = None):
        super().__init__(name=name)
        self.seq_length = seq_length

    @tf.function
    def __call__(
        self, segments: list[tf.RaggedTensor], seq_length: int | tf.Tensor | None = None
    ) -> dict[str, tf.Tensor]:
        return bert_pack_inputs(segments, self.seq_length if seq_length is None else seq_length)


class BertStylePreprocessor(tf.Module):
    """`tokenize` then `bert_pack_inputs`: string[None] -> the encoder's three int32 inputs."""

    def __init__(self, vocab_file: str | Path, seq_length: int = 32, name: str | None = None):
        super().__init__(name=name)
        self.tokenize = BertStyleTokenizer(vocab_file)
        self.bert_pack_inputs = BertStylePacker(seq_length)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="strings")])
    def __call__(self, strings: tf.Tensor) -> dict[str, tf.Tensor]:
        return self.bert_pack_inputs([self.tokenize(strings)])


def _dropout(values: tf.Tensor, rate: float, training: bool) -> tf.Tensor:
    return tf.nn.dropout(values, rate) if training and rate > 0 else values


class _Dense(tf.Module):
    def __init__(self, units_in: int, units_out: int, generator: tf.random.Generator, name: str):
        super().__init__(name=name)
        with self.name_scope:
            initial = generator.truncated_normal([units_in, units_out], stddev=0.02)
            self.kernel = tf.Variable(initial, name="kernel")
            self.bias = tf.Variable(tf.zeros([units_out]), name="bias")

    def __call__(self, values: tf.Tensor) -> tf.Tensor:
        return tf.tensordot(values, self.kernel, 1) + self.bias


class _LayerNorm(tf.Module):
    def __init__(self, size: int, name: str):
        super().__init__(name=name)
        with self.name_scope:
            self.gamma = tf.Variable(tf.ones([size]), name="gamma")
            self.beta = tf.Variable(tf.zeros([size]), name="beta")

    def __call__(self, values: tf.Tensor) -> tf.Tensor:
        mean, variance = tf.nn.moments(values, axes=[-1], keepdims=True)
        return (values - mean) * tf.math.rsqrt(variance + 1e-12) * self.gamma + self.beta


class _TransformerLayer(tf.Module):
    def __init__(self, hidden_size, num_heads, dropout, generator, name):
        super().__init__(name=name)
        self.num_heads, self.dropout = num_heads, dropout
        with self.name_scope:
            self.query, self.key, self.value, self.attention_output = (
                _Dense(hidden_size, hidden_size, generator, part)
                for part in ("query", "key", "value", "attention_output")
            )
            self.attention_norm = _LayerNorm(hidden_size, "attention_layer_norm")
            self.intermediate = _Dense(hidden_size, 4 * hidden_size, generator, "intermediate")
            self.output_dense = _Dense(4 * hidden_size, hidden_size, generator, "output")
            self.output_norm = _LayerNorm(hidden_size, "output_layer_norm")

    def __call__(self, values, attention_adder, training):
        batch, length, hidden_size = tf.shape(values)[0], tf.shape(values)[1], values.shape[-1]
        head_size = hidden_size // self.num_heads

        def heads(projected):  # [B, T, H] -> [B, heads, T, head_size]
            projected = tf.reshape(projected, [batch, length, self.num_heads, head_size])
            return tf.transpose(projected, [0, 2, 1, 3])

        query, key, value = (
            heads(self.query(values)),
            heads(self.key(values)),
            heads(self.value(values)),
        )
        scores = tf.matmul(query, key, transpose_b=True) * head_size**-0.5 + attention_adder
        weights = _dropout(tf.nn.softmax(scores), self.dropout, training)
        context = tf.transpose(tf.matmul(weights, value), [0, 2, 1, 3])
        attended = self.attention_output(tf.reshape(context, [batch, length, hidden_size]))
        values = self.attention_norm(values + _dropout(attended, self.dropout, training))
        fed = self.output_dense(tf.nn.gelu(self.intermediate(values)))
        return self.output_norm(values + _dropout(fed, self.dropout, training))


class BertStyleEncoder(tf.Module):
    """A small BERT: word + position + type embeddings, post-norm transformer layers, a pooler.

    Args:
        vocabulary_size: number of word ids (the preprocessor's vocab_size).
        seq_length: the longest input (rows of the position embedding).
        hidden_size: width H of every output.
        num_layers: transformer layers, one "encoder_outputs" entry each.
        num_heads: attention heads; must divide hidden_size.
        dropout: rate for embeddings, attention weights and residual branches when training.
        seed: seeds the truncated-normal (stddev 0.02) initial weights.

    Call arguments:
        inputs: dict of int32[B, T] "input_word_ids", "input_mask" and "input_type_ids",
            T <= seq_length.
        training: Python bool; dropout is applied only when True.

    Returns:
        dict with "pooled_output", "default" (float32[B, H]), "sequence_output"
        (float32[B, T, H]) and "encoder_outputs" (a list of float32[B, T, H]).
    """

    def __init__(
        self,
        vocabulary_size: int,
        seq_length: int = 32,
        hidden_size: int = 32,
        num_layers: int = 1,
        num_heads: int = 2,
        dropout: float = 0.1,
        seed: int = 0,
        name: str | None = None,
    ):
        super().__init__(name=name)
        for field, value in dict(
            vocabulary_size=vocabulary_size, seq_length=seq_length, num_layers=num_layers
        ).items():
            if value < 1:
                raise ValueError(f"BertStyleEncoder: {field}={value} must be at least 1.")
        if num_heads < 1 or hidden_size % num_heads:
            raise ValueError(
                f"BertStyleEncoder: num_heads={num_heads} must divide hidden_size={hidden_size}."
            )
        if not 0 <= dropout < 1:
            raise ValueError(f"BertStyleEncoder: dropout={dropout} must be in [0, 1).")
        self.vocabulary_size, self.seq_length = vocabulary_size, seq_length
        self.dropout = dropout
        generator = tf.random.Generator.from_seed(seed)
        with self.name_scope:
            self.word_embeddings, self.position_embeddings, self.type_embeddings = (
                tf.Variable(generator.truncated_normal([rows, hidden_size], stddev=0.02), name=part)
                for rows, part in (
                    (vocabulary_size, "word_embeddings"),
                    (seq_length, "position_embeddings"),
                    (TYPE_VOCABULARY_SIZE, "type_embeddings"),
                )
            )
            self.embedding_norm = _LayerNorm(hidden_size, "embeddings_layer_norm")
            self.transformer_layers = [
                _TransformerLayer(hidden_size, num_heads, dropout, generator, f"layer_{index}")
                for index in range(num_layers)
            ]
            self.pooler = _Dense(hidden_size, hidden_size, generator, "pooler_transform")

    def __call__(self, inputs: dict[str, tf.Tensor], training: bool = False) -> dict:
        word_ids, mask, type_ids = (inputs[key] for key in ENCODER_INPUT_KEYS)
        checks = [
            tf.debugging.assert_less_equal(
                tf.shape(word_ids)[1],
                self.seq_length,
                message=f"input_word_ids: longer than seq_length={self.seq_length}",
            )
        ]
        for key, values, size in (
            ("input_word_ids", word_ids, self.vocabulary_size),
            ("input_type_ids", type_ids, TYPE_VOCABULARY_SIZE),
        ):
            checks.append(tf.debugging.assert_non_negative(values, message=f"{key}: negative id"))
            checks.append(tf.debugging.assert_less(values, size, message=f"{key}: ids >= {size}"))
        with tf.control_dependencies(checks):  # before the lookups: GPUs gather zeros past the end
            word_ids, type_ids = tf.identity(word_ids), tf.identity(type_ids)
        values = (
            tf.gather(self.word_embeddings, word_ids)
            + tf.gather(self.position_embeddings, tf.range(tf.shape(word_ids)[1]))
            + tf.gather(self.type_embeddings, type_ids)
        )
        values = _dropout(self.embedding_norm(values), self.dropout, training)
        padding = 1.0 - tf.cast(mask, tf.float32)
        attention_adder = padding[:, tf.newaxis, tf.newaxis, :] * MASK_ADDER
        encoder_outputs = []
        for layer in self.transformer_layers:
            values = layer(values, attention_adder, training)
            encoder_outputs.append(values)
        pooled = tf.tanh(self.pooler(values[:, 0]))
        return {
            "pooled_output": pooled,
            "default": pooled,
            "sequence_output": values,
            "encoder_outputs": encoder_outputs,
        }


def _hub_root(call, variables=(), trainable_variables=(), **children) -> tf.train.Checkpoint:
    """The object saved as a Reusable SavedModel: `__call__` plus the variable lists Hub reads."""
    root = tf.train.Checkpoint(**children)
    root.__call__ = call
    root.variables = list(variables)
    root.trainable_variables = list(trainable_variables)
    root.regularization_losses = []
    return root


def save_bert_style_preprocessor(path: str | Path, words: list[str], seq_length: int = 32) -> Path:
    """Saves a BERT-style preprocessor for `words` (see the module docstring) and returns path."""
    if seq_length < 2:
        raise ValueError(f"seq_length={seq_length}: [CLS] and [SEP] need at least 2.")
    path = Path(path)
    tokens = bert_style_vocabulary(words)
    with tempfile.TemporaryDirectory() as folder:
        vocab_file = Path(folder) / "vocab.txt"
        vocab_file.write_text("".join(token + "\n" for token in tokens), encoding="utf-8")
        preprocessor = BertStylePreprocessor(vocab_file, seq_length)
        pack = preprocessor.bert_pack_inputs.__call__
        for ragged_rank in (1, 2):
            spec = tf.RaggedTensorSpec([None] * (ragged_rank + 1), tf.int32, ragged_rank)
            for num_segments in (1, 2):
                pack.get_concrete_function([spec] * num_segments)
                pack.get_concrete_function([spec] * num_segments, tf.TensorSpec([], tf.int32))
        root = _hub_root(
            preprocessor.__call__,
            tokenize=preprocessor.tokenize,
            bert_pack_inputs=preprocessor.bert_pack_inputs,
        )
        tf.saved_model.save(root, str(path))
    return path


def save_bert_style_encoder(
    path: str | Path,
    vocabulary_size: int,
    seq_length: int = 32,
    hidden_size: int = 32,
    num_layers: int = 1,
    num_heads: int = 2,
    dropout: float = 0.1,
    seed: int = 0,
) -> Path:
    """Saves a BertStyleEncoder as a Reusable SavedModel (see the module docstring)."""
    path = Path(path)
    encoder = BertStyleEncoder(
        vocabulary_size, seq_length, hidden_size, num_layers, num_heads, dropout, seed
    )
    call = tf.function(encoder.__call__)
    specs = {key: tf.TensorSpec([None, None], tf.int32, name=key) for key in ENCODER_INPUT_KEYS}
    for training in (False, True):
        call.get_concrete_function(specs, training=training)
    root = _hub_root(call, encoder.variables, encoder.trainable_variables)
    tf.saved_model.save(root, str(path))
    return path


def save_bert_style_pair(
    folder: str | Path, words: list[str], seq_length: int = 32, **encoder_options
) -> tuple[Path, Path]:
    """Saves `folder/preprocessor` and a matching `folder/encoder`; returns both paths.

    `encoder_options` are save_bert_style_encoder's hidden_size, num_layers, num_heads, dropout
    and seed.
    """
    folder = Path(folder)
    preprocessor = save_bert_style_preprocessor(folder / "preprocessor", words, seq_length)
    vocabulary_size = len(SPECIAL_TOKENS) + len(words)
    encoder = save_bert_style_encoder(
        folder / "encoder", vocabulary_size, seq_length, **encoder_options
    )
    return preprocessor, encoder
