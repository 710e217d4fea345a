"""training.fused_adam: Keras' Adam, one ResourceApplyAdam kernel per variable."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from training import fused_adam

DENSE = np.random.default_rng(9).normal(size=(6, 4)).astype("float32")
TABLE = np.ones((5, 3), "float32")


def train_four_steps(optimizer):
    """A dense weight and an embedding-like weight (IndexedSlices gradients), 4 steps."""
    dense, table = keras.Variable(DENSE), keras.Variable(TABLE)

    @tf.function
    def step(gradient, rows):
        values = tf.reshape(gradient[:3, :2], (2, 3))
        rows_gradient = tf.IndexedSlices(values, rows, [5, 3])
        optimizer.apply([gradient, rows_gradient], [dense, table])

    for seed in range(4):
        gradient = np.random.default_rng(seed).normal(size=(6, 4)).astype("float32") * 3
        # Row 1 twice (a token twice in a batch), as embedding gradients have it.
        step(tf.constant(gradient), tf.constant([1, 1] if seed % 2 else [1, 3]))
    return step, dense.numpy(), table.numpy()


@pytest.mark.parametrize("settings", [{}, {"clipnorm": 1.0}, {"global_clipnorm": 0.5}])
def test_the_fused_update_is_keras_adams(settings):
    _, *expected = train_four_steps(keras.optimizers.Adam(0.01, **settings))
    _, *got = train_four_steps(fused_adam.adam(0.01, **settings))
    for value, reference, start in zip(got, expected, (DENSE, TABLE), strict=True):
        assert np.abs(reference - start).max() > 0.01  # the weights moved
        np.testing.assert_allclose(value, reference, rtol=1e-6, atol=1e-6)


def test_each_variable_is_updated_by_one_kernel():
    optimizer = fused_adam.adam(0.01)
    assert fused_adam.is_fused(optimizer)
    step, *_ = train_four_steps(optimizer)
    graph = step.get_concrete_function(tf.zeros((6, 4)), tf.constant([1, 3])).graph
    types = [op.type for op in graph.get_operations()]
    # The dense weight by the kernel; the IndexedSlices one by Keras' own update.
    assert types.count("ResourceApplyAdam") == 1
    assert types.count("AssignSubVariableOp") == 1


@pytest.mark.parametrize("task", ["captioning", "label_prediction", "retrieval"])
def test_the_tasks_compile_the_fused_adam(task):
    import importlib

    from tasks.options import TaskOptions

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    importlib.import_module(f"tasks.{task}").compile_model(model, 1e-3, TaskOptions())
    assert fused_adam.is_fused(model.optimizer)


def test_it_stays_a_keras_adam_that_loads_without_this_module():
    config = keras.saving.serialize_keras_object(fused_adam.adam(0.01, clipnorm=5.0))
    assert (config["module"], config["class_name"]) == ("keras.optimizers", "Adam")
    assert config["config"]["clipnorm"] == 5.0


def test_amsgrad_and_a_loss_scale_wrapper():
    assert not fused_adam.is_fused(fused_adam.adam(0.01, amsgrad=True))
    wrapped = keras.optimizers.LossScaleOptimizer(fused_adam.adam(0.01))
    assert fused_adam.is_fused(wrapped)
