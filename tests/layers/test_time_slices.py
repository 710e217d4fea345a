"""The time slices equal plain slicing, and their gradients avoid StridedSliceGrad."""

import numpy as np
import pytest
import tensorflow as tf

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


@pytest.mark.parametrize("cut", [steps_from.__name__, last_step.__name__])
def test_the_gradient_of_a_static_cut_makes_no_strided_slice_grad(cut):
    function = {"steps_from": lambda x: steps_from(x, 1), "last_step": last_step}[cut]
    traced = tf.function(lambda x: value_and_gradient(function, x)[1])
    graph = traced.get_concrete_function(tf.TensorSpec(SEQUENCES.shape)).graph
    types = {op.type for op in graph.get_operations()}
    assert "StridedSliceGrad" not in types
    plain = tf.function(lambda x: value_and_gradient(lambda y: y[:, 1:], x)[1])
    plain_graph = plain.get_concrete_function(tf.TensorSpec(SEQUENCES.shape)).graph
    assert "StridedSliceGrad" in {op.type for op in plain_graph.get_operations()}
