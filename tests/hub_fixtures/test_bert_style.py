"""The BERT-style Hub pair: the real modules' conventions, loaded the ways Hub users load them."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests.hub_fixtures.bert_style import (
    CLS_ID,
    ENCODER_INPUT_KEYS,
    MASK_ID,
    PAD_ID,
    SEP_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    BertStyleEncoder,
    bert_style_vocabulary,
    save_bert_style_pair,
    save_bert_style_preprocessor,
)

WORDS = ["the", "red", "circle", "is", "above", "a", "blue", "square", ".", "left", "of"]
ID = {token: index for index, token in enumerate([*SPECIAL_TOKENS, *WORDS])}
SEQ_LENGTH = 32
HIDDEN_SIZE = 32
NUM_LAYERS = 2


@pytest.fixture(scope="module")
def pair_paths(tmp_path_factory):
    return save_bert_style_pair(
        tmp_path_factory.mktemp("bert_style"),
        WORDS,
        SEQ_LENGTH,
        hidden_size=HIDDEN_SIZE,
        num_layers=NUM_LAYERS,
        dropout=0.1,
    )


@pytest.fixture(scope="module")
def preprocessor(pair_paths):
    import tensorflow_hub as hub

    return hub.load(str(pair_paths[0]))


@pytest.fixture(scope="module")
def encoder(pair_paths):
    import tensorflow_hub as hub

    return hub.load(str(pair_paths[1]))


def padded(ids, length=SEQ_LENGTH):
    return ids + [PAD_ID] * (length - len(ids))


def run_script(script, *args, env_extra=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env_extra or {})}
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=Path(args[0]).parent,
        env=env,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_preprocessor_returns_the_three_int32_inputs(preprocessor):
    outputs = preprocessor(tf.constant(["a red circle", "", "blue"]))
    assert sorted(outputs) == sorted(ENCODER_INPUT_KEYS)
    for values in outputs.values():
        assert values.dtype == tf.int32
        assert values.shape == (3, SEQ_LENGTH)
    signature = preprocessor.__call__.concrete_functions[0].structured_input_signature[0][0]
    assert signature.shape.as_list() == [None] and signature.dtype == tf.string


def test_preprocessor_ids_for_a_known_sentence(preprocessor):
    outputs = preprocessor(tf.constant(["The red CIRCLE, is above\ta green square."]))
    expected = [CLS_ID] + [ID[word] for word in "the red circle".split()] + [UNK_ID]
    expected += [ID["is"], ID["above"], ID["a"], UNK_ID, ID["square"], ID["."], SEP_ID]
    assert outputs["input_word_ids"].numpy()[0].tolist() == padded(expected)
    assert outputs["input_mask"].numpy()[0].tolist() == padded([1] * len(expected))
    assert outputs["input_type_ids"].numpy()[0].tolist() == [0] * SEQ_LENGTH


def test_preprocessor_truncates_cleans_and_packs_empty_text(preprocessor):
    long_text = " ".join(["a"] * (SEQ_LENGTH + 8))
    texts = [long_text, "", b"\xff\x00Red" + "\u00a0SQUARE\u200b".encode(), "Ünïcode"]
    ids = preprocessor(tf.constant(texts))["input_word_ids"].numpy().tolist()
    mask = preprocessor(tf.constant(texts))["input_mask"].numpy().tolist()
    assert ids[0] == [CLS_ID] + [ID["a"]] * (SEQ_LENGTH - 2) + [SEP_ID]
    assert mask[0] == [1] * SEQ_LENGTH
    assert ids[1] == padded([CLS_ID, SEP_ID]) and mask[1] == padded([1, 1])
    assert ids[2] == padded([CLS_ID, ID["red"], ID["square"], SEP_ID])
    assert ids[3] == padded([CLS_ID, UNK_ID, SEP_ID])


def test_tokenize_and_special_tokens_follow_the_real_preprocessor(preprocessor, pair_paths):
    tokens = preprocessor.tokenize(tf.constant(["a red, x", ""]))
    assert isinstance(tokens, tf.RaggedTensor) and tokens.ragged_rank == 2
    assert tokens.to_list() == [[[ID["a"]], [ID["red"]], [UNK_ID], [UNK_ID]], []]
    special = {
        key: int(value) for key, value in preprocessor.tokenize.get_special_tokens_dict().items()
    }
    assert special == {
        "vocab_size": len(SPECIAL_TOKENS) + len(WORDS),
        "start_of_sequence_id": CLS_ID,
        "end_of_segment_id": SEP_ID,
        "padding_id": PAD_ID,
        "mask_id": MASK_ID,
    }
    vocab_file = pair_paths[0] / "assets" / "vocab.txt"
    assert vocab_file.read_text(encoding="utf-8").splitlines() == [*SPECIAL_TOKENS, *WORDS]
    assert preprocessor.tokenize.vocab_file.asset_path.numpy().decode() == str(vocab_file)


def round_robin(lengths, budget):
    counts = [0] * len(lengths)
    while budget and counts != lengths:
        for index, length in enumerate(lengths):
            if budget and counts[index] < length:
                counts[index] += 1
                budget -= 1
    return counts


@pytest.mark.parametrize("ragged_rank", [1, 2])
def test_bert_pack_inputs_packs_two_segments_round_robin(preprocessor, ragged_rank):
    seq_length = 9
    pairs = [(0, 0), (1, 10), (10, 1), (3, 3), (4, 4), (2, 7), (6, 0)]
    first = [[ID["a"]] * left for left, _ in pairs]
    second = [[ID["blue"]] * right for _, right in pairs]
    if ragged_rank == 2:
        first, second = ([[[token] for token in row] for row in rows] for rows in (first, second))
    segments = [
        tf.ragged.constant(rows, tf.int32, ragged_rank=ragged_rank) for rows in (first, second)
    ]
    outputs = preprocessor.bert_pack_inputs(segments, seq_length=seq_length)
    assert outputs["input_word_ids"].shape == (len(pairs), seq_length)
    for row, lengths in enumerate(pairs):
        left, right = round_robin(list(lengths), seq_length - 3)
        ids = [CLS_ID] + [ID["a"]] * left + [SEP_ID] + [ID["blue"]] * right + [SEP_ID]
        assert outputs["input_word_ids"].numpy()[row].tolist() == padded(ids, seq_length)
        types = [0] * (left + 2) + [1] * (right + 1)
        assert outputs["input_type_ids"].numpy()[row].tolist() == padded(types, seq_length)
        assert outputs["input_mask"].numpy()[row].tolist() == padded([1] * len(ids), seq_length)
    default = preprocessor.bert_pack_inputs([preprocessor.tokenize(tf.constant(["a red circle"]))])
    assert default["input_word_ids"].shape == (1, SEQ_LENGTH)
    with pytest.raises(tf.errors.InvalidArgumentError, match="seq_length"):
        preprocessor.bert_pack_inputs(segments, seq_length=2)


@pytest.mark.parametrize(
    "words, message",
    [
        (["red", "Blue"], "Blue"),
        (["red", "red"], "duplicated"),
        (["[CLS]", "red"], "special"),
        (["red,"], "red,"),
        (["two words"], "two words"),
    ],
)
def test_words_that_no_text_maps_to_are_refused(words, message):
    with pytest.raises(ValueError, match=message):
        bert_style_vocabulary(words)


def test_a_seq_length_without_room_for_cls_and_sep_is_refused(tmp_path):
    with pytest.raises(ValueError, match="seq_length=1"):
        save_bert_style_preprocessor(tmp_path, ["red"], seq_length=1)


@pytest.mark.slow
def test_the_pair_loads_and_reexports_in_a_process_that_imports_only_tensorflow(pair_paths):
    script = """
        import json, sys
        from pathlib import Path
        import tensorflow as tf

        preprocessor_path, encoder_path, export_path = sys.argv[1:4]
        preprocessor = tf.saved_model.load(preprocessor_path)
        encoder = tf.saved_model.load(encoder_path)
        texts = tf.constant(["a red circle is above the blue square", "left of"])
        direct = encoder(preprocessor(texts))["pooled_output"]

        class Embedder(tf.Module):
            def __init__(self):
                super().__init__()
                self.preprocessor, self.encoder = preprocessor, encoder

            @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
            def serve(self, text):
                return {"embedding": self.encoder(self.preprocessor(text))["pooled_output"]}

        embedder = Embedder()
        tf.saved_model.save(embedder, export_path, signatures={"serving_default": embedder.serve})
        served = tf.saved_model.load(export_path).signatures["serving_default"](text=texts)
        print(json.dumps({
            "shape": direct.shape.as_list(),
            "same": bool(tf.reduce_all(tf.abs(served["embedding"] - direct) < 1e-6)),
            "assets": sorted(path.name for path in (Path(export_path) / "assets").iterdir()),
            "modules": sorted(name for name in ("tensorflow_hub", "tensorflow_text", "tf_keras",
                                                "tests") if name in sys.modules),
        }))
    """
    preprocessor_path, encoder_path = pair_paths
    export_path = preprocessor_path.parent / "embedder"
    result = run_script(script, preprocessor_path, encoder_path, export_path)
    assert result == {
        "shape": [2, HIDDEN_SIZE],
        "same": True,
        "assets": ["vocab.txt"],
        "modules": [],
    }


def test_encoder_outputs_follow_the_real_encoder(encoder, preprocessor):
    outputs = encoder(preprocessor(tf.constant(["a red circle", "blue"])))
    assert sorted(outputs) == ["default", "encoder_outputs", "pooled_output", "sequence_output"]
    assert outputs["pooled_output"].shape == (2, HIDDEN_SIZE)
    assert outputs["pooled_output"].dtype == tf.float32
    assert outputs["sequence_output"].shape == (2, SEQ_LENGTH, HIDDEN_SIZE)
    np.testing.assert_array_equal(outputs["default"], outputs["pooled_output"])
    assert len(outputs["encoder_outputs"]) == NUM_LAYERS
    assert all(layer.shape == (2, SEQ_LENGTH, HIDDEN_SIZE) for layer in outputs["encoder_outputs"])
    np.testing.assert_array_equal(outputs["encoder_outputs"][-1], outputs["sequence_output"])
    assert not np.allclose(outputs["encoder_outputs"][0], outputs["encoder_outputs"][1])
    shorter = encoder(
        {key: values[:, :8] for key, values in preprocessor(tf.constant(["a"])).items()}
    )
    assert shorter["sequence_output"].shape == (1, 8, HIDDEN_SIZE)


def test_encoder_ignores_tokens_under_mask_zero(encoder, preprocessor):
    inputs = preprocessor(tf.constant(["a red circle", "the blue square is left of a red circle"]))
    padding = inputs["input_mask"] == 0
    changed = dict(inputs)
    changed["input_word_ids"] = tf.where(padding, ID["square"], inputs["input_word_ids"])
    changed["input_type_ids"] = tf.where(padding, 1, inputs["input_type_ids"])
    original, altered = encoder(inputs), encoder(changed)
    np.testing.assert_allclose(altered["pooled_output"], original["pooled_output"], atol=1e-6)
    real = tf.logical_not(padding)
    np.testing.assert_allclose(
        tf.boolean_mask(altered["sequence_output"], real),
        tf.boolean_mask(original["sequence_output"], real),
        atol=1e-6,
    )
    unmasked = encoder({**changed, "input_mask": tf.ones_like(inputs["input_mask"])})
    assert not np.allclose(unmasked["pooled_output"], original["pooled_output"], atol=1e-4)


def test_dropout_is_active_only_when_training(encoder, preprocessor):
    inputs = preprocessor(tf.constant(["a red circle is above the blue square"]))
    first, second = (
        encoder(inputs)["pooled_output"],
        encoder(inputs, training=False)["pooled_output"],
    )
    np.testing.assert_array_equal(first, second)
    trained = encoder(inputs, training=True)["pooled_output"]
    assert not np.allclose(trained, first, atol=1e-4)


def test_gradients_reach_every_trainable_variable_through_call(encoder, preprocessor):
    assert encoder.trainable_variables
    assert {id(v) for v in encoder.variables} == {id(v) for v in encoder.trainable_variables}
    assert list(encoder.regularization_losses) == []
    inputs = preprocessor(tf.constant(["a red circle", "the blue square is left of a red circle"]))
    with tf.GradientTape() as tape:
        outputs = encoder(inputs, training=True)
        loss = tf.reduce_sum(outputs["pooled_output"] * tf.range(HIDDEN_SIZE, dtype=tf.float32))
    gradients = tape.gradient(loss, encoder.trainable_variables)
    norms = {
        variable.name: float(tf.norm(tf.convert_to_tensor(gradient)))
        for variable, gradient in zip(encoder.trainable_variables, gradients, strict=True)
        if gradient is not None
    }
    assert len(norms) == len(encoder.trainable_variables)
    # A key bias adds the same score to every key of a query, which softmax ignores.
    assert all(norm > 0 for name, norm in norms.items() if "key/bias" not in name), norms


def test_encoder_refuses_inputs_it_cannot_embed(encoder, preprocessor):
    inputs = preprocessor(tf.constant(["a red circle"]))
    too_long = {key: tf.concat([values, values], axis=1) for key, values in inputs.items()}
    with pytest.raises(tf.errors.InvalidArgumentError, match="longer than"):
        encoder(too_long)
    unknown = {**inputs, "input_word_ids": inputs["input_word_ids"] + 1000}
    with pytest.raises(tf.errors.InvalidArgumentError, match="input_word_ids"):
        encoder(unknown)
    with pytest.raises(ValueError, match="num_heads=3"):
        BertStyleEncoder(10, hidden_size=32, num_heads=3)


@pytest.mark.slow
def test_hub_keras_layers_fine_tune_the_pair_in_tf_keras(pair_paths):
    script = """
        import json, sys
        import numpy as np
        import tensorflow as tf
        import tensorflow_hub as hub

        preprocessor_path, encoder_path = sys.argv[1:3]
        tf.keras.utils.set_random_seed(0)
        text = tf.keras.layers.Input(shape=(), dtype=tf.string)
        encoder = hub.KerasLayer(encoder_path, trainable=True)
        pooled = encoder(hub.KerasLayer(preprocessor_path)(text))["pooled_output"]
        model = tf.keras.Model(text, tf.keras.layers.Dense(2)(pooled))
        model.compile(
            tf.keras.optimizers.Adam(1e-3),
            tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        texts = np.array(["a red circle", "a blue square"] * 4)
        labels = np.array([0, 1] * 4)
        before = [weight.numpy().copy() for weight in encoder.trainable_weights]
        history = model.fit(texts, labels, batch_size=4, epochs=2, verbose=0)
        unchanged = [weight.name for weight, old in zip(encoder.trainable_weights, before)
                     if np.array_equal(weight.numpy(), old)]

        # Two segments, as the TF Hub BERT tutorials pack them.
        preprocessor = hub.load(preprocessor_path)
        tokenize = hub.KerasLayer(preprocessor.tokenize)
        pack = hub.KerasLayer(preprocessor.bert_pack_inputs, arguments=dict(seq_length=12))
        first, second = (tf.keras.layers.Input(shape=(), dtype=tf.string) for _ in range(2))
        packed = pack([tokenize(first), tokenize(second)])
        pair_model = tf.keras.Model([first, second], encoder(packed)["sequence_output"])
        pair_output = pair_model([tf.constant(["a red circle"]), tf.constant(["blue"])])
        print(json.dumps({
            "keras": tf.keras.Model.__module__,
            "losses": history.history["loss"],
            "trainable": len(model.trainable_weights),
            "encoder_trainable": len(encoder.trainable_weights),
            "unchanged": unchanged,
            "pair_shape": list(pair_output.shape),
        }))
    """
    result = run_script(script, *pair_paths, env_extra={"TF_USE_LEGACY_KERAS": "1"})
    assert result["keras"].startswith("tf_keras."), result["keras"]
    assert result["encoder_trainable"] > 0
    assert result["trainable"] == result["encoder_trainable"] + 2
    assert all(np.isfinite(result["losses"])) and len(result["losses"]) == 2
    assert all("key/bias" in name for name in result["unchanged"]), result["unchanged"]
    assert result["pair_shape"] == [1, 12, HIDDEN_SIZE]
