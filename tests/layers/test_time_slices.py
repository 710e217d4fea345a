"""The time slices equal plain slicing, and their gradients avoid StridedSliceGrad."""

import numpy as np
import pytest
import tensorflow as tf

from layers import ImageTextAlignmentLSTM
from layers.time_slices import last_step, only_step, steps_from

SEQUENCES = np.random.default_rng(0).normal(size=(3, 5, 4)).astype("float32")
CASES = [
    (lambda x: steps_from(x, 1), lambda x: x[:, 1:]),
    (last_step, lambda x: x[:, -1]),
    (lambda x: only_step(x[:, 2:3]), lambda x: x[:, 2]),
]


def value_and_gradient(cut, inputs):
    weights = tf.constant(np.arange(1.0, 1.0 + inputs.shape[-1], dtype="float32"))
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        loss = tf.reduce_sum(cut(inputs) * weights)
    return cut(inputs), tape.gradient(loss, inputs)


@pytest.mark.parametrize("cut, reference", CASES)
def test_equals_slicing_with_static_and_unknown_lengths(cut, reference):
    value, gradient = value_and_gradient(cut, tf.constant(SEQUENCES))
    expected, expected_gradient = value_and_gradient(reference, tf.constant(SEQUENCES))
    np.testing.assert_array_equal(np.array(value), np.array(expected))
    np.testing.assert_array_equal(np.array(gradient), np.array(expected_gradient))
    dynamic = tf.function(lambda x: value_and_gradient(cut, x))
    spec = tf.TensorSpec((None, None, SEQUENCES.shape[-1]))
    value, gradient = dynamic.get_concrete_function(spec)(tf.constant(SEQUENCES))
    np.testing.assert_array_equal(np.array(value), np.array(expected))
    np.testing.assert_array_equal(np.array(gradient), np.array(expected_gradient))


def strided_slice_grads(function, shapes) -> int:
    """How many StridedSliceGrad ops the gradient of sum(function(*inputs)) makes."""

    def gradients(*inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_sum(function(*inputs))
        return tape.gradient(loss, inputs)

    specs = [tf.TensorSpec(shape) for shape in shapes]
    graph = tf.function(gradients).get_concrete_function(*specs).graph
    return sum(op.type == "StridedSliceGrad" for op in graph.get_operations())


@pytest.mark.parametrize(
    "cut", [lambda x: steps_from(x, 1), last_step], ids=["steps_from", "last_step"]
)
def test_the_gradient_of_a_static_cut_makes_no_strided_slice_grad(cut):
    assert strided_slice_grads(cut, [SEQUENCES.shape]) == 0
    assert strided_slice_grads(lambda x: x[:, 1:], [SEQUENCES.shape]) == 1  # what it avoids


def test_the_alignment_lstm_drops_its_image_step_with_a_cheap_cut():
    layer = ImageTextAlignmentLSTM(units=4, embedding_dim=3)
    outputs = layer(np.zeros((2, 5), "float32"), np.zeros((2, 6, 3), "float32"))
    assert outputs.shape == (2, 6, 4)
    assert strided_slice_grads(layer, [(2, 5), (2, 6, 3)]) == 0
