"""ProjectedInputLSTM computes what keras.layers.LSTM computes, from the same weights."""

import collections

import keras
import numpy as np
import pytest
import tensorflow as tf

from layers import (
    ImageTextAlignmentLSTM,
    RecurrentTextEncoder,
    lstm_sequence,
    projected_input_lstm,
)
from layers.projected_input_lstm import ProjectedInputLSTM

RNG = np.random.default_rng(0)
SEQUENCES = RNG.normal(size=(4, 6, 5)).astype("float32")
# Trailing padding as the tokenizers make it, a row with gaps, and one with no real step.
MASK = np.array(
    [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [0, 1, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0]], bool
)

SETTINGS = {
    "sequences": {"return_sequences": True},
    "states_backwards": {"return_sequences": True, "return_state": True, "go_backwards": True},
    "unrolled_states": {"unroll": True, "return_state": True},
    "unrolled_backwards": {"unroll": True, "return_sequences": True, "go_backwards": True},
    "zero_output_for_mask": {
        "return_sequences": True,
        "return_state": True,
        "zero_output_for_mask": True,
    },
}


@pytest.fixture
def own_loop_runs(monkeypatch):
    """Counts the calls of the layer's own recurrence: the equivalence checks below would
    pass just as well if the layer always fell back to Keras' loop."""
    calls = []
    recurrence = projected_input_lstm.lstm_sequence

    def counted(*arguments, **settings):
        calls.append(1)
        return recurrence(*arguments, **settings)

    monkeypatch.setattr(projected_input_lstm, "lstm_sequence", counted)
    return calls


def twin_layers(units=4, batch_halves=False, **settings):
    """A keras LSTM and a ProjectedInputLSTM holding the same weights."""
    reference = keras.layers.LSTM(units, **settings)
    projected = ProjectedInputLSTM(units, batch_halves=batch_halves, **settings)
    reference.build(SEQUENCES.shape)
    projected.build(SEQUENCES.shape)
    projected.set_weights(reference.get_weights())
    return reference, projected


def outputs_and_gradients(layer, mask, training=False, sequences=SEQUENCES, initial_state=None):
    """Outputs, and the gradients (inputs, initial states if given, weights) of a loss
    that weighs every output element by its own fixed random factor."""
    inputs = tf.constant(sequences)
    states = [] if initial_state is None else [tf.constant(state) for state in initial_state]
    with tf.GradientTape() as tape:
        tape.watch([inputs, *states])
        outputs = layer(
            inputs,
            mask=None if mask is None else tf.constant(mask),
            training=training,
            **({"initial_state": states} if states else {}),
        )
        outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        total = sum(
            tf.reduce_sum(output * np.random.default_rng(index).normal(size=output.shape))
            for index, output in enumerate(outputs)
        )
    gradients = tape.gradient(total, [inputs, *states, *layer.trainable_weights])
    return [np.array(value) for value in outputs], [np.array(value) for value in gradients]


# Training runs the feature-major recurrence and its own backward pass, inference the
# batch-major one (differentiated by autodiff).
@pytest.mark.parametrize("batch_halves", [False, True], ids=["whole", "halves"])
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("setting", list(SETTINGS))
def test_outputs_and_gradients_match_keras_lstm(
    setting, masked, training, batch_halves, own_loop_runs
):
    reference, projected = twin_layers(batch_halves=batch_halves, **SETTINGS[setting])
    mask = MASK if masked else None
    expected_outputs, expected_gradients = outputs_and_gradients(reference, mask)
    outputs, gradients = outputs_and_gradients(projected, mask, training=training)
    assert own_loop_runs == [1]
    expected = expected_outputs + expected_gradients
    for got, want in zip(outputs + gradients, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def assert_same(got, expected):
    """(outputs, gradients) pairs equal to Keras' within float32 rounding."""
    for value, want in zip(got[0] + got[1], expected[0] + expected[1], strict=True):
        np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("steps", [8, 19])
def test_sequences_longer_than_a_chunk_match_keras_lstm(steps, own_loop_runs):
    """The backward pass forms the kernels' gradients chunk by chunk (8 steps each)."""
    assert lstm_sequence.CHUNK_STEPS == 8
    sequences = RNG.normal(size=(3, steps, 5)).astype("float32")
    mask = np.arange(steps)[None, :] < np.array([[steps], [steps - 4], [5]])
    reference, projected = twin_layers(return_sequences=True, return_state=True)
    expected = outputs_and_gradients(reference, mask, sequences=sequences)
    got = outputs_and_gradients(projected, mask, training=True, sequences=sequences)
    assert own_loop_runs == [1]
    assert_same(got, expected)


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_initial_states_and_their_gradients_match_keras_lstm(training, own_loop_runs):
    initial_state = [RNG.normal(size=(4, 4)).astype("float32") for _ in range(2)]
    reference, projected = twin_layers(return_sequences=True, return_state=True)
    expected = outputs_and_gradients(reference, MASK, initial_state=initial_state)
    got = outputs_and_gradients(projected, MASK, training=training, initial_state=initial_state)
    assert own_loop_runs == [1]
    assert_same(got, expected)


def test_an_unknown_length_falls_back_to_the_keras_loop(own_loop_runs):
    reference, projected = twin_layers(return_sequences=True)
    spec = tf.TensorSpec((None, None, 5), tf.float32)
    call = tf.function(lambda sequences: projected(sequences), input_signature=[spec])
    np.testing.assert_allclose(call(SEQUENCES), reference(SEQUENCES), rtol=1e-5, atol=1e-6)
    assert own_loop_runs == []


def test_input_dropout_draws_the_same_mask_as_keras_lstm(own_loop_runs):
    # Same seed, same single draw: the cell's mask for step 0, reused at every step.
    reference, projected = twin_layers(return_sequences=True, dropout=0.4, seed=7)
    expected, _ = outputs_and_gradients(reference, MASK, training=True)
    got, _ = outputs_and_gradients(projected, MASK, training=True)
    assert own_loop_runs == [1]
    inference, _ = outputs_and_gradients(projected, MASK, training=False)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(got[0], inference[0])  # dropout acted


def test_recurrent_dropout_falls_back_to_the_cell_loop(own_loop_runs):
    reference, projected = twin_layers(return_sequences=True, recurrent_dropout=0.3, seed=3)
    expected, _ = outputs_and_gradients(reference, MASK, training=True)
    got, _ = outputs_and_gradients(projected, MASK, training=True)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5, atol=1e-6)
    assert own_loop_runs == []


def test_the_zoo_recurrent_layers_run_it():
    assert isinstance(RecurrentTextEncoder(10, 5, 4).recurrent, ProjectedInputLSTM)
    bidirectional = RecurrentTextEncoder(10, 5, 4, bidirectional=True).recurrent
    assert isinstance(bidirectional.forward_layer, ProjectedInputLSTM)
    assert isinstance(ImageTextAlignmentLSTM(4, 5).lstm, ProjectedInputLSTM)


def test_bidirectional_builds_a_projected_backward_layer_and_matches():
    reference = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True))
    projected = keras.layers.Bidirectional(ProjectedInputLSTM(4, return_sequences=True))
    reference.build(SEQUENCES.shape)
    projected.build(SEQUENCES.shape)
    projected.set_weights(reference.get_weights())
    assert isinstance(projected.backward_layer, ProjectedInputLSTM)
    np.testing.assert_allclose(
        projected(SEQUENCES, mask=MASK), reference(SEQUENCES, mask=MASK), rtol=1e-5, atol=1e-6
    )


def test_weights_saved_with_keras_lstm_load_into_the_text_encoder(tmp_path, monkeypatch):
    # Text encoders saved before this layer replaced keras.layers.LSTM still load.
    from layers import recurrent_text_encoder

    tokens = np.array([[3, 1, 4, 0, 0, 0], [2, 7, 1, 8, 2, 8]], dtype="int32")

    def encoder_model():
        inputs = keras.Input((6,), dtype="int32")
        outputs = recurrent_text_encoder.RecurrentTextEncoder(10, 5, 4)(inputs)
        return keras.Model(inputs, outputs)

    with monkeypatch.context() as patch:
        patch.setitem(recurrent_text_encoder.CELLS, "lstm", keras.layers.LSTM)
        saved = encoder_model()
    assert type(saved.layers[1].recurrent) is keras.layers.LSTM
    saved.save_weights(tmp_path / "encoder.weights.h5")
    loaded = encoder_model()
    assert isinstance(loaded.layers[1].recurrent, ProjectedInputLSTM)
    loaded.load_weights(tmp_path / "encoder.weights.h5")
    for key in ("sequence", "pooled"):
        np.testing.assert_allclose(loaded(tokens)[key], saved(tokens)[key], rtol=1e-5, atol=1e-6)


def test_config_round_trip():
    layer = ProjectedInputLSTM(4, return_sequences=True, dropout=0.1, unroll=True)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(clone, ProjectedInputLSTM) and clone.get_config() == layer.get_config()


def training_graph_operations(steps):
    """Every op of the graph of lstm_sequence's gradients (training path) over `steps`
    steps, the custom gradient's own function included."""
    from layers.lstm_sequence import lstm_sequence

    sequences = tf.random.normal((2, steps, 5))
    states = tf.zeros((2, 2))
    kernel, bias, recurrent = tf.random.normal((5, 8)), tf.zeros(8), tf.random.normal((2, 8))

    @tf.function
    def gradients(sequences, kernel, recurrent):
        with tf.GradientTape() as tape:
            tape.watch([sequences, kernel, recurrent])
            hidden, _ = lstm_sequence(sequences, kernel, bias, states, states, recurrent)
            loss = tf.reduce_sum(hidden)
        return tape.gradient(loss, [sequences, kernel, recurrent])

    graph = gradients.get_concrete_function(sequences, kernel, recurrent).graph
    # The custom gradient's backward is a function of its own inside the graph.
    return graph.get_operations() + [
        op for function in graph._functions.values() for op in function.graph.get_operations()
    ]


def test_no_step_multiplies_by_a_transpose_the_optimizer_would_fold():
    """The forward steps (and the input projection) read the kernels' transposes through
    a Snapshot, the backward steps the recurrent kernel itself: fed by a Transpose op
    directly, TensorFlow's optimizer folds it into the MatMul as transpose_a/b=True, and
    oneDNN ran the transpose_b ones at about half speed."""
    steps = 3
    matmuls = [
        op for op in training_graph_operations(steps) if op.type in ("MatMul", "BatchMatMulV2")
    ]
    flag = {"MatMul": "transpose_b", "BatchMatMulV2": "adj_y"}
    assert not [op.name for op in matmuls if op.get_attr(flag[op.type])]
    assert not [
        op.name for op in matmuls if op.type == "MatMul" and op.inputs[1].op.type == "Transpose"
    ]
    left = collections.Counter(op.inputs[0].op.type for op in matmuls)
    # Each forward step and the projection; the input gradient reads it on the right.
    assert left["Snapshot"] == steps + 1, left
    assert left["Placeholder"] == steps, left  # each backward step: the recurrent kernel


def test_each_backward_step_differentiates_its_activations_in_single_kernels():
    """A backward step goes through its three sigmoids and two tanhs with one
    SigmoidGrad or TanhGrad each, not three element-wise ops apiece (10 fewer ops a
    step, and no Square, which the optimizer made of `y * y`)."""
    steps = 3
    kinds = collections.Counter(op.type for op in training_graph_operations(steps))
    assert kinds["SigmoidGrad"] == 3 * steps and kinds["TanhGrad"] == 2 * steps, kinds


def test_inference_runs_batch_major_without_the_custom_gradient():
    """Decoding and serving run few rows, where the feature-major layout is slower."""
    _, projected = twin_layers(return_sequences=True)

    def graph_ops(training):
        call = tf.function(lambda sequences: projected(sequences, training=training))
        graph = call.get_concrete_function(tf.constant(SEQUENCES)).graph
        return {op.type for op in graph.get_operations()}

    assert "Snapshot" not in graph_ops(False) and "IdentityN" not in graph_ops(False)
    assert {"Snapshot", "IdentityN"} <= graph_ops(True)


def all_operations(graph):
    """The graph's ops and those of every function it holds (cond branches, custom
    gradients), recursively."""
    operations = list(graph.get_operations())
    for function in graph._functions.values():
        operations += all_operations(function.graph)
    return operations


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize(
    "batch_halves, rows, recurrences",
    [(False, None, 1), (False, 4, 1), (True, 4, 2), (True, 1, 1), (True, None, 3)],
    ids=["whole", "whole-static", "halves-static", "halves-one-row", "halves-unknown"],
)
def test_batch_halves_run_two_independent_recurrences(training, batch_halves, rows, recurrences):
    """Two recurrences for a static batch of two rows or more, one below (never one on
    zero rows), and for a batch unknown when traced a cond between the two (2 + 1).
    Counted as custom-gradient functions (their IdentityN) in training, as recurrent
    matmuls (a step's and the input projection) in inference."""
    _, projected = twin_layers(batch_halves=batch_halves)
    steps, features = SEQUENCES.shape[1:]
    spec = tf.TensorSpec([rows, steps, features])
    forward = tf.function(lambda x: projected(x, training=training), input_signature=[spec])
    kinds = collections.Counter(
        op.type for op in all_operations(forward.get_concrete_function().graph)
    )
    assert (kinds["IdentityN"] if training else kinds["MatMul"] / (steps + 1)) == recurrences


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_halves_of_a_batch_unknown_when_traced_match_keras(training):
    """The cond's two branches (one row, two or more, odd), gradients included."""
    reference, projected = twin_layers(return_sequences=True, return_state=True, batch_halves=True)
    steps, features = SEQUENCES.shape[1:]

    def results(layer, sequences):
        with tf.GradientTape() as tape:
            tape.watch(sequences)
            outputs = layer(sequences, training=training)
            loss = sum(tf.reduce_sum(output * output) for output in outputs)
        return [*outputs, *tape.gradient(loss, [sequences, *layer.trainable_weights])]

    spec = tf.TensorSpec([None, steps, features])
    call = tf.function(lambda sequences: results(projected, sequences), input_signature=[spec])
    for rows in (1, 3, 4):
        sequences = tf.constant(RNG.normal(size=(rows, steps, features)).astype("float32"))
        for value, expected in zip(call(sequences), results(reference, sequences), strict=True):
            np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-5)


def test_batch_halves_in_the_config_and_in_the_zoo_s_recurrent_layers():
    layer = ProjectedInputLSTM(4, batch_halves=True)
    assert ProjectedInputLSTM.from_config(layer.get_config()).batch_halves is True
    # Unset (follow batch_halves_while_tracing), it is left out of the config.
    assert ProjectedInputLSTM(4).batch_halves is None
    assert "batch_halves" not in ProjectedInputLSTM(4).get_config()
    with pytest.raises(TypeError):
        ProjectedInputLSTM(4, "tanh")  # keyword-only: not where LSTM's activation sits
    # It reads the image first, so nothing runs beside it.
    assert ImageTextAlignmentLSTM(4, 5).lstm.batch_halves is True
    encoder = RecurrentTextEncoder(10, 5, 4, batch_halves=True)
    assert encoder.recurrent.batch_halves is True
    assert RecurrentTextEncoder.from_config(encoder.get_config()).recurrent.batch_halves
    assert RecurrentTextEncoder(10, 5, 4).recurrent.batch_halves is None
    assert "batch_halves" not in RecurrentTextEncoder(10, 5, 4).get_config()
    # Its two directions already take two cores.
    bidirectional = RecurrentTextEncoder(10, 5, 4, bidirectional=True).recurrent
    assert bidirectional.forward_layer.batch_halves is False
    assert bidirectional.backward_layer.batch_halves is False
    for refused in ({"cell": "gru"}, {"bidirectional": True}):
        with pytest.raises(ValueError, match="batch_halves applies to the one-direction lstm"):
            RecurrentTextEncoder(10, 5, 4, batch_halves=True, **refused)
