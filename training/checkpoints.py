"""Exact-resume state of a training run: what `training.loop.Trainer` checkpoints.

One `tf.train.Checkpoint` holds the model, its optimizer, the metric accumulators of
the epoch in progress and a `TrainingState` (epoch, step in the epoch, global step,
history, whether training finished), and, when asked for and supported, the training
iterator. Everything is written in one checkpoint, so a restart never pairs the
weights of one step with the position of another.

Why a kill during a save is harmless: `tf.train.CheckpointManager.save` writes the
new checkpoint's files completely, then replaces the `checkpoint` pointer file by an
atomic rename, and only then deletes the oldest checkpoint. A kill before the rename
leaves the pointer on the previous, complete checkpoint (the new files are orphans
that the next save of the same number overwrites); checked by a SIGKILL inside the
save, through train.py, in tests/training/test_train_kill_resume.py (`MMZOO_TEST_PAUSE=save:N`, see
training/pause_points.py, stops save N right there: its files written, the pointer
not). Checkpoints are numbered by a counter of saves kept in the state, so a number
is never reused for different contents.

Under MultiWorkerMirroredStrategy every worker saves (reading the distributed
variables takes collectives that all workers join), but only the chief writes to
`directory`: the others write to a fresh temporary folder and delete it at once (the
TF/Keras convention). All workers restore from `directory`, so it must be a
filesystem they share.
"""

import json
import shutil
import tempfile

import tensorflow as tf

from training.pause_points import pause_if_requested, requested

CHECKPOINT_NAME = "ckpt"
STATE_FIELDS = (
    "epoch",
    "step_in_epoch",
    "global_step",
    "saves",
    "finished",
    "stopped_early",
    "iterator_saved",
    "history",
)


class TrainingState(tf.train.experimental.PythonState):
    """Where a run is: the counters and the history, saved as JSON in the checkpoint.

    Attributes:
        epoch: epochs completed (0-based index of the epoch in progress).
        step_in_epoch: batches completed in the epoch in progress.
        global_step: batches completed in all (equals `optimizer.iterations` when
            every step applies gradients).
        saves: checkpoints written so far; numbers the next one.
        finished: training ended (all epochs ran, or a callback stopped it).
        stopped_early: a callback set `model.stop_training`.
        iterator_saved: the checkpoint holds the training iterator's state.
        history: one list per log name ("loss", metrics, "val_loss", ...), one
            value per completed epoch.
    """

    def __init__(self):
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.saves = 0
        self.finished = False
        self.stopped_early = False
        self.iterator_saved = False
        self.history: dict[str, list[float]] = {}

    def serialize(self) -> str:
        return json.dumps({name: getattr(self, name) for name in STATE_FIELDS})

    def deserialize(self, string) -> None:
        if isinstance(string, bytes):
            string = string.decode("utf-8")
        saved = json.loads(string)
        for name in STATE_FIELDS:
            setattr(self, name, saved[name])

    def position(self) -> str:
        """Where the run stands, for messages: "epoch 2, batch 3" or "end of epoch 2"."""
        if self.step_in_epoch == 0 and self.epoch > 0:
            return f"end of epoch {self.epoch}"
        return f"epoch {self.epoch + 1}, batch {self.step_in_epoch}"

    def describe(self) -> str:
        return (
            f"epoch {self.epoch + 1}, {self.step_in_epoch} batch(es) into it, "
            f"global step {self.global_step}"
        )


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's checkpoints and exports (True off multi-worker)."""
    return bool(strategy.extended.should_checkpoint)


class TrainingCheckpoint:
    """Saves and restores a run's objects in `directory`, keeping the newest `max_to_keep`.

    Args:
        directory: where the chief's checkpoints go and where every worker restores from.
        strategy: the run's strategy; decides whether this process is the chief.
        objects: name -> trackable (model, optimizer, metric variables, state).
        max_to_keep: checkpoints kept; at least 2, so that one complete checkpoint
            always survives the deletion of the oldest.

    Attributes:
        restored_path: the checkpoint that `restore` read, or None.
    """

    def __init__(
        self,
        directory: str,
        strategy: tf.distribute.Strategy,
        objects: dict,
        max_to_keep: int = 2,
    ):
        if max_to_keep < 2:
            raise ValueError(f"max_to_keep must be >= 2, got {max_to_keep}.")
        self.directory = str(directory)
        self.chief = is_chief(strategy)
        self.restored_path = None
        self._objects = dict(objects)
        self._root = tf.train.Checkpoint(**self._objects)
        self._manager = None
        if self.chief:
            self._manager = tf.train.CheckpointManager(
                self._root, self.directory, max_to_keep, checkpoint_name=CHECKPOINT_NAME
            )

    def latest(self) -> str | None:
        return tf.train.latest_checkpoint(self.directory)

    def restore(self) -> str | None:
        """Restores the newest checkpoint of `directory` into the objects; returns its path.

        Raises:
            ValueError: the checkpoint does not hold these objects (another model).
        """
        path = self.latest()
        if path is None:
            return None
        status = None
        try:
            status = tf.train.Checkpoint(**self._objects).restore(path)
            status.assert_existing_objects_matched()
        except (AssertionError, ValueError) as error:
            if status is not None:
                status.expect_partial()  # no warnings at exit about what was not restored
            raise ValueError(
                f"{path}: the checkpoint does not match this model and optimizer "
                f"(a different model or settings?): {error}"
            ) from error
        status.expect_partial()  # the iterator, when saved, is restored on its own
        self.restored_path = path
        return path

    def attach_iterator(self, iterator) -> None:
        """Makes the next saves hold `iterator`'s position (a tf.data iterator)."""
        self._root.iterator = iterator

    def restore_iterator(self, iterator) -> None:
        """Moves `iterator` to the position saved in the restored checkpoint."""
        status = tf.train.Checkpoint(iterator=iterator).restore(self.restored_path)
        try:
            status.assert_existing_objects_matched()
        except AssertionError as error:
            raise ValueError(
                f"{self.restored_path}: no training iterator state in the checkpoint: {error}"
            ) from error
        status.expect_partial()

    def save(self, number: int) -> str:
        """Writes checkpoint `number`; returns where (a temporary path off the chief)."""
        if self.chief:
            if requested("save", number):
                # What a kill inside CheckpointManager.save leaves: the files of
                # checkpoint `number` complete, the `checkpoint` pointer not yet on them.
                self._root.write(f"{self.directory}/{CHECKPOINT_NAME}-{number}")
                pause_if_requested("save", number, f"in save {number}")
            return self._manager.save(checkpoint_number=number)
        scratch = tempfile.mkdtemp(prefix="workertemp_")
        try:
            return self._root.write(f"{scratch}/{CHECKPOINT_NAME}-{number}")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
