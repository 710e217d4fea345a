"""Training time measured from fit's own callbacks, not process wall time.

tf.data's autotuner can stall the end of a short fit() for seconds
(shared/UPSTREAM.md, "Speed"), so the clock starts and stops with training.
"""

import time

import keras


class TrainingTimer(keras.callbacks.Callback):
    """Records seconds between on_train_begin and on_train_end, and examples seen."""

    def __init__(self):
        super().__init__()
        self.seconds = 0.0
        self.steps = 0
        self._started = 0.0

    def on_train_begin(self, logs=None):
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1

    def on_train_end(self, logs=None):
        self.seconds = time.perf_counter() - self._started
