"""The training-speed benchmarks' clock: it reads time from training callbacks."""

import time

import keras


class StepsTimer(keras.callbacks.Callback):
    """Seconds from the end of the first training step to the end of the last, from the
    training callbacks: tracing, the epoch-end metric pass and the loop's teardown (where
    tf.data can stall for seconds) are left out, as they are for the PyTorch twins.
    Being a callback that is not marked async-safe, it gets each step's logs as floats:
    under JAX too, Keras has waited for the step before it calls it.
    """

    def __init__(self):
        super().__init__()
        self.steps, self.started, self.ended = 0, 0.0, 0.0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        self.ended = time.perf_counter()
        if self.steps == 1:
            self.started = self.ended

    def examples_per_second(self, batch_size: int) -> float:
        return (self.steps - 1) * batch_size / (self.ended - self.started)
