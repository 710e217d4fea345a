"""Mixed precision (`--mixed-precision`): the Keras dtype policy for the devices that train.

GPUs compute in float16 ("mixed_float16"), TPUs and CPUs in bfloat16
("mixed_bfloat16"); variables stay float32 either way. Under "mixed_float16"
Keras 3 `Model.compile` wraps the optimizer in a `keras.optimizers.LossScaleOptimizer`
by itself (when the model was built under that policy), so gradients too small
for float16 are not flushed to zero; bfloat16 has float32's range and needs no
loss scaling.

Set the policy before the model is built: layers read it when they are made.
The zoo's numerically sensitive parts (logits layers, contrastive scores, the
learned temperature, attention softmax, losses) compute in float32 whatever
the policy; tests/training/test_mixed_precision.py checks every registered
model and marks the known exceptions.
"""

from collections.abc import Iterable

import keras
import tensorflow as tf

GPU_POLICY = "mixed_float16"
BFLOAT16_POLICY = "mixed_bfloat16"


def _device_types(strategy_or_devices) -> set[str]:
    if strategy_or_devices is None:
        return {device.device_type for device in tf.config.list_logical_devices()}
    if isinstance(strategy_or_devices, tf.distribute.Strategy):
        if isinstance(
            strategy_or_devices,
            tf.distribute.TPUStrategy | tf.distribute.experimental.TPUStrategy,
        ):
            return {"TPU"}
        try:
            devices = strategy_or_devices.extended.worker_devices
        except RuntimeError:  # the default strategy has no device list: the local devices
            return _device_types(None)
        return _device_types(devices)
    if isinstance(strategy_or_devices, str | tf.config.LogicalDevice | tf.config.PhysicalDevice):
        strategy_or_devices = [strategy_or_devices]
    return {_device_type(device) for device in strategy_or_devices}


def _device_type(device) -> str:
    if isinstance(device, tf.config.LogicalDevice | tf.config.PhysicalDevice):
        return device.device_type
    try:
        device_type = tf.DeviceSpec.from_string(device).device_type
    except ValueError as error:
        raise ValueError(f"{device!r} is not a device name such as '/gpu:0': {error}") from error
    if device_type is None:
        raise ValueError(f"{device!r} names no device type; expected a name such as '/gpu:0'.")
    return device_type.upper()


def mixed_precision_policy(
    strategy_or_devices: tf.distribute.Strategy | Iterable | str | None = None,
) -> str:
    """The mixed dtype policy for where training runs.

    Args:
        strategy_or_devices: a tf.distribute strategy (its worker devices), device
            names ("/gpu:0", "/job:worker/task:0/device:TPU:0"), tf.config devices,
            or None for this machine's logical devices.

    Returns:
        "mixed_float16" when a GPU trains; "mixed_bfloat16" on TPUs (a TPUStrategy
        or TPU devices, even beside a host CPU) and on CPUs.

    Example:
        >>> mixed_precision_policy(["/cpu:0", "/gpu:0"])
        'mixed_float16'
        >>> mixed_precision_policy("/cpu:0")
        'mixed_bfloat16'
    """
    types = _device_types(strategy_or_devices)
    if "GPU" in types and "TPU" not in types:
        return GPU_POLICY
    return BFLOAT16_POLICY


def enable_mixed_precision(
    strategy_or_devices: tf.distribute.Strategy | Iterable | str | None = None,
) -> str:
    """Sets the global Keras dtype policy to `mixed_precision_policy(...)`; returns its name.

    Call it before building the model (inside or outside `strategy.scope()`).
    """
    policy = mixed_precision_policy(strategy_or_devices)
    keras.mixed_precision.set_dtype_policy(policy)
    return policy
