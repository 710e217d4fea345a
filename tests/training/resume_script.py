"""Trains the tiny model with checkpoints, then "exports" its weights; killed and restarted
by tests/training/test_resume.py.

python tests/training/resume_script.py CHECKPOINT_DIR OUTPUT.npz

Prints "step N" after each batch (N = optimizer.iterations). Where to stop, for the test
to SIGKILL the process at a known point (it then sleeps until killed):
  PAUSE_AT_STEP=N          after batch N, before any checkpoint of step N
  PAUSE_IN_SAVE=N          inside save number N, once its files are written but before
                           the `checkpoint` file points at it
  PAUSE_BEFORE_EXPORT=1    after fit() returned, before the export
"""

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tests.training import tiny_run  # noqa: E402
from training.loop import Trainer  # noqa: E402

EPOCHS = 3
STEPS_PER_EPOCH = 10  # 40 examples, batches of 4
CHECKPOINT_EVERY = 4


def pause(message: str) -> None:
    print(message, flush=True)
    while True:
        time.sleep(60)


class PrintSteps(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        print(f"step {step}", flush=True)
        if os.environ.get("PAUSE_AT_STEP") == str(step):
            pause(f"paused at step {step}")


def pause_inside_save(number: str) -> None:
    """Makes save `number` stop after its files are complete, before they are recorded."""
    record_state = tf.train.CheckpointManager._record_state

    def paused_record_state(manager):
        if manager.latest_checkpoint.endswith(f"-{number}"):
            pause(f"paused in save {number}")
        record_state(manager)

    tf.train.CheckpointManager._record_state = paused_record_state


def main(checkpoint_dir: str, output: str) -> None:
    tf.config.experimental.enable_op_determinism()
    if "PAUSE_IN_SAVE" in os.environ:
        pause_inside_save(os.environ["PAUSE_IN_SAVE"])
    model = tiny_run.model()
    trainer = Trainer(
        model,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=CHECKPOINT_EVERY,
        callbacks=[PrintSteps()],
    )
    history = trainer.fit(
        tiny_run.dataset(40), EPOCHS, validation_data=tiny_run.dataset(12, shuffle=False)
    )
    print("trained", flush=True)
    if os.environ.get("PAUSE_BEFORE_EXPORT"):
        pause("paused before export")
    np.savez(
        output,
        *model.get_weights(),
        iterations=int(model.optimizer.iterations.numpy()),
        history=json.dumps(history),
    )
    print("exported", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
