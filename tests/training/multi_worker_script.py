"""One worker of a two-worker MultiWorkerMirroredStrategy run of the tiny model (TF_CONFIG
set by tests/training/test_multi_worker.py).

python tests/training/multi_worker_script.py CHECKPOINT_DIR OUTPUT_DIR

Writes OUTPUT_DIR/worker-<index>.npz (its weights, optimizer iterations, history) and
OUTPUT_DIR/writes-<index>.txt (every checkpoint path it wrote); the chief alone writes
the export, OUTPUT_DIR/export.npz. Prints "step N" after each batch; PAUSE_AT_STEP=N
makes it wait after batch N until killed.
"""

import json
import os
import sys
import time
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
STEPS_PER_EPOCH = 6  # 48 examples, global batches of 8 (4 per worker)
CHECKPOINT_EVERY = 2


class PrintSteps(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        print(f"step {step}", flush=True)
        if os.environ.get("PAUSE_AT_STEP") == str(step):
            print(f"paused at step {step}", flush=True)
            while True:
                time.sleep(60)


def record_writes(path: Path) -> None:
    """Appends the path of every checkpoint this process writes to `path`."""

    def recorded(write):
        def wrapper(self, *args, **kwargs):
            written = write(self, *args, **kwargs)
            with path.open("a") as log:
                log.write(f"{written}\n")
            return written

        return wrapper

    tf.train.CheckpointManager.save = recorded(tf.train.CheckpointManager.save)
    tf.train.Checkpoint.write = recorded(tf.train.Checkpoint.write)


def sharded_dataset() -> tf.data.Dataset:
    dataset = tiny_run.dataset(48, batch_size=8)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def main(checkpoint_dir: str, output_dir: str) -> None:
    tf.config.experimental.enable_op_determinism()
    output = Path(output_dir)
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    record_writes(output / f"writes-{index}.txt")
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = tiny_run.model()
    trainer = Trainer(
        model,
        strategy,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=CHECKPOINT_EVERY,
        callbacks=[PrintSteps()],
    )
    history = trainer.fit(sharded_dataset(), EPOCHS)
    weights = model.get_weights()
    iterations = int(model.optimizer.iterations.numpy())
    np.savez(
        output / f"worker-{index}.npz",
        *weights,
        iterations=iterations,
        history=json.dumps(history),
    )
    if trainer.is_chief:
        np.savez(output / "export.npz", *weights)
    print(f"done: worker {index}, {iterations} steps, chief={trainer.is_chief}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
