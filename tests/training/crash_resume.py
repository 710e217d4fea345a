"""A run that crashes after a checkpoint, resumed by a new Trainer, beside the same run
uninterrupted: what the resumed run ended with, against the uninterrupted one."""

import keras
import numpy as np
import tensorflow as tf

from tests.training import tiny_run
from training.loop import Trainer

EPOCHS = 3
CRASH_AT = 8  # global steps; a checkpoint every 3, 5 steps an epoch (tiny_run.dataset(20))


class Crash(keras.callbacks.Callback):
    """Stands for a killed process: raises after global step `at`."""

    def __init__(self, at: int):
        super().__init__()
        self.at = at

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.at:
            raise RuntimeError("crash")


def crash_and_resume(folder, checkpoint_iterator: bool) -> dict:
    options = {"checkpoint_every": 3, "checkpoint_iterator": checkpoint_iterator}
    validation = tiny_run.dataset(8, shuffle=False)
    expected_model = tiny_run.model()
    expected = Trainer(expected_model).fit(tiny_run.dataset(20), EPOCHS, validation)
    crashing = Trainer(
        tiny_run.model(), checkpoint_dir=folder, callbacks=[Crash(CRASH_AT)], **options
    )
    try:
        crashing.fit(tiny_run.dataset(20), EPOCHS, validation)
        crashed = None
    except RuntimeError as error:
        crashed = str(error)
    messages = []
    model = tiny_run.model()
    model.set_weights([weight + 1 for weight in model.get_weights()])  # restored over
    resumed = Trainer(model, checkpoint_dir=folder, print_fn=messages.append, **options)
    history = resumed.fit(tiny_run.dataset(20), EPOCHS, validation)
    saved = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(folder)))
    return {
        "crashed": crashed,
        "first_message": messages[0],
        "iterations": int(model.optimizer.iterations.numpy()),
        "weight_differences": [
            float(np.max(np.abs(got - want)))
            for got, want in zip(model.get_weights(), expected_model.get_weights(), strict=True)
        ],
        "same_history": history == expected,
        "has_iterator": any(
            name.startswith("iterator/") for name in saved.get_variable_to_shape_map()
        ),
    }
