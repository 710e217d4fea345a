"""Picks the tf.distribute strategy named on the command line."""

import tensorflow as tf

STRATEGIES = ("auto", "default", "one_device", "mirrored")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """Returns the strategy for `name`; `auto` mirrors over two or more GPUs, else default."""
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) >= 2 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    raise ValueError(f"Unknown strategy {name!r}; expected one of {STRATEGIES}.")
