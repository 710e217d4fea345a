"""Trains the tiny model on one device and under MirroredStrategy over two logical CPUs
from the same weights on the same global batches, without and with gradient clipping,
and with a loss reduced "mean_with_sample_weight" (the captioners' token mean); prints
what tests/training/test_loop.py compares as one JSON line.

The logical devices must exist before TensorFlow initialises, hence a script.
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from training.lean_import import import_tensorflow  # noqa: E402

import_tensorflow()  # before Keras imports it, without its unused optional imports
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tests.training import tiny_run  # noqa: E402
from training.loop import Trainer  # noqa: E402

EPOCHS = 2
TRAIN_EXAMPLES = 32  # batches of 8: 4 per replica
VALIDATION_EXAMPLES = 21  # the last batch of 5 splits 3 + 2
# Clipping that acts at every step (the gradient norms here are 0.1 to 1); the last one
# clips gradients of a loss scaled by 2**15, as under mixed_float16.
CLIPPING = {
    "clipnorm": {"clipnorm": 0.02},
    "global_clipnorm": {"global_clipnorm": 0.05},
    "loss_scaled_clipnorm": {"clipnorm": 0.02, "loss_scale": True},
}


class RecordSteps(keras.callbacks.Callback):
    """The running loss after each batch and the weights after each step."""

    def __init__(self):
        super().__init__()
        self.losses, self.weights = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.losses.append(logs["loss"])
        self.weights.append(np.concatenate([w.ravel() for w in self.model.get_weights()]))


def weights_of_the_class_balance():
    """Sample weights that differ per example, so that weighting changes the loss."""
    _, labels = tiny_run.examples(TRAIN_EXAMPLES)
    return np.where(labels == 0, 2.0, 0.5).astype("float32")


def weights_of_padding(count: int) -> np.ndarray:
    """Weights whose sums differ between the replicas' halves of each unshuffled batch of
    8 (one real example of the first 4, four of the second; the last validation batch
    of 5 splits 3 + 2: weights 1, 0, 0 | 0, 2), and a third batch that weighs nothing."""
    position = np.arange(count) % 8
    weights = np.where(position < 4, position == 0, 1.0 + 0.25 * position).astype("float32")
    weights[16:24] = 0.0
    return weights


def weighted_mean_data() -> tuple[tf.data.Dataset, tf.data.Dataset]:
    return tuple(
        tiny_run.dataset(count, batch_size=8, shuffle=False, weights=weights_of_padding(count))
        for count in (TRAIN_EXAMPLES, VALIDATION_EXAMPLES)
    )


def train(
    strategy: tf.distribute.Strategy, initial_weights, weighted_mean=False, **optimizer_options
) -> dict:
    with strategy.scope():
        model = tiny_run.model(**optimizer_options)
        if weighted_mean:
            model.compile(
                optimizer=keras.optimizers.Adam(0.05),
                loss=keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True, reduction="mean_with_sample_weight"
                ),
                weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            )
        model.set_weights(initial_weights)
    if weighted_mean:
        train_data, validation_data = weighted_mean_data()
    else:
        weights = weights_of_the_class_balance()
        train_data = tiny_run.dataset(TRAIN_EXAMPLES, batch_size=8, weights=weights)
        validation_data = tiny_run.dataset(VALIDATION_EXAMPLES, batch_size=8, shuffle=False)
    record = RecordSteps()
    history = Trainer(model, strategy, callbacks=[record]).fit(
        train_data, EPOCHS, validation_data=validation_data
    )
    return {
        "model": model,
        "history": history,
        "losses": record.losses,
        "weights": np.stack(record.weights).tolist(),
    }


def main() -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    initial_weights = tiny_run.model().get_weights()
    single = train(tf.distribute.get_strategy(), initial_weights)
    mirrored_strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    mirrored = train(mirrored_strategy, initial_weights)

    # The mirrored run's final weights, evaluated by Keras on one device.
    evaluator = tiny_run.model()
    evaluator.set_weights(mirrored["model"].get_weights())
    evaluation = evaluator.evaluate(
        tiny_run.dataset(VALIDATION_EXAMPLES, batch_size=8, shuffle=False),
        verbose=0,
        return_dict=True,
    )
    clipped = {
        setting: {
            "single": train(tf.distribute.get_strategy(), initial_weights, **options),
            "mirrored": train(mirrored_strategy, initial_weights, **options),
        }
        for setting, options in CLIPPING.items()
    }
    weighted_mean = {
        "single": train(tf.distribute.get_strategy(), initial_weights, weighted_mean=True),
        "mirrored": train(mirrored_strategy, initial_weights, weighted_mean=True),
    }
    print(
        json.dumps(
            {
                "replicas": mirrored_strategy.num_replicas_in_sync,
                "single": {key: single[key] for key in ("history", "losses", "weights")},
                "mirrored": {key: mirrored[key] for key in ("history", "losses", "weights")},
                "evaluation": evaluation,
                "clipped": {
                    setting: {
                        run: {key: runs[run][key] for key in ("losses", "weights")}
                        for run in ("single", "mirrored")
                    }
                    for setting, runs in clipped.items()
                },
                "weighted_mean": {
                    run: {key: weighted_mean[run][key] for key in ("history", "losses", "weights")}
                    for run in ("single", "mirrored")
                },
            }
        )
    )


if __name__ == "__main__":
    main()
