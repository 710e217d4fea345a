"""The training-speed benchmarks' clock: it reads time from training callbacks."""

import time
from collections.abc import Callable

import keras


class StepsTimer(keras.callbacks.Callback):
    """Seconds from the end of the first training step to the end of the last, from the
    training callbacks: tracing, the epoch-end metric pass and the loop's teardown (where
    tf.data can stall for seconds) are left out, as they are for the twins.

    Args:
        wait: called with the model at each step's end, before the clock is read; for
            JAX, which dispatches asynchronously, it waits for the updated weights.
    """

    def __init__(self, wait: Callable[[keras.Model], None] | None = None):
        super().__init__()
        self.wait = wait
        self.steps, self.started, self.ended = 0, 0.0, 0.0

    def on_train_batch_end(self, batch, logs=None):
        if self.wait is not None:
            self.wait(self.model)
        self.steps += 1
        self.ended = time.perf_counter()
        if self.steps == 1:
            self.started = self.ended

    def examples_per_second(self, batch_size: int) -> float:
        return (self.steps - 1) * batch_size / (self.ended - self.started)
