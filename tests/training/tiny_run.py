"""A tiny model and a deterministic, reshuffling dataset shared by the trainer tests and scripts."""

import keras
import numpy as np
import tensorflow as tf

FEATURES = 4
CLASSES = 3


def examples(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features float32 [count, 4] and labels int32 [count] that a small MLP can learn."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(count, FEATURES)).astype("float32")
    labels = (np.digitize(features[:, 0] + features[:, 1], [-0.5, 0.5])).astype("int32")
    return features, labels


def dataset(
    count: int = 40,
    batch_size: int = 4,
    seed: int = 0,
    shuffle: bool = True,
    weights: np.ndarray | None = None,
) -> tf.data.Dataset:
    """(x, y[, weight]) batches; shuffled anew each iteration and jittered by a stream of
    `Dataset.random` that also changes each iteration, both from `seed`."""
    features, labels = examples(count, seed)
    columns = (features, labels) if weights is None else (features, labels, weights)
    data = tf.data.Dataset.from_tensor_slices(columns)
    if shuffle:
        data = data.shuffle(count, seed=seed, reshuffle_each_iteration=True)
        noise = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True)
        data = tf.data.Dataset.zip(data, noise).map(jitter)
    return data.batch(batch_size)


def jitter(element, random_integer):
    """Adds a small noise to the features, drawn from the element's random integer."""
    features, *rest = element
    seed = tf.stack([random_integer, tf.constant(0, tf.int64)])
    noise = tf.random.stateless_normal([FEATURES], seed, stddev=0.01)
    return (features + noise, *rest)


def model(
    seed: int = 1, learning_rate: float = 0.05, loss_scale: bool = False, **optimizer_options
) -> keras.Model:
    """A compiled two-layer MLP with an L2 penalty; build and compile it in strategy.scope().

    `loss_scale` wraps the Adam optimizer in a LossScaleOptimizer (as mixed_float16 does)."""
    keras.utils.set_random_seed(seed)
    network = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(8, activation="relu", kernel_regularizer="l2"),
            keras.layers.Dense(CLASSES),
        ]
    )
    optimizer = keras.optimizers.Adam(learning_rate, **optimizer_options)
    if loss_scale:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    network.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return network
