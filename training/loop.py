"""A training loop for every tf.distribute strategy, with exact resume: `Trainer.fit`.

Keras 3 `fit()` fails under MultiWorkerMirroredStrategy with two workers
(keras-team/keras#20585) and `BackupAndRestore` cannot resume exactly (shared/UPSTREAM.md,
"Training loop"). `Trainer` runs the model's own loss and metrics in a custom step under
`strategy.run`, calls Keras callbacks as `fit` does, stops on a non-finite loss before
any checkpoint holds it, and, given a `checkpoint_dir`, resumes a killed run at the next
step with the same data, so that its result equals an uninterrupted run's.

Reductions. `model.compute_loss` already scales each replica's loss by 1/replicas
(Keras does so for sum-over-batch losses and for `model.losses`), so the gradients that
the optimizer sums over replicas are those of the global mean, and the sum of the
replicas' losses is the step's loss. Metric accumulators are SUM-aggregated on-read
variables: reading them outside the replicas sums every replica, so the epoch's and the
validation metrics equal single-device ones at the same global batch. Keras
optimizers clip (`clipnorm`, `global_clipnorm`, `clipvalue`) each replica's gradients
before they are summed (as in `fit`: measured 13% loss difference with clipnorm=0.01
over two replicas); the step clips the summed gradient instead (training/steps.py), so
clipping acts as on one device. A "mean_with_sample_weight" loss (the captioners' mean
over real tokens) divides by each replica's own weight sum in Keras, so the gradient
would be a mean of the replicas' means; the step all-reduces the weight sums and
rescales each replica's compiled loss (not `model.losses`) to its share of the global
weighted mean, so that losses, gradients and validation losses equal one device's.

Where the training data resumes. Each epoch iterates the dataset anew (a fresh
iterator; one pass, or `steps_per_epoch` batches). A dataset that reshuffles each
iteration (`shuffle(seed=...)`, `Dataset.random(rerandomize_each_iteration=True)`) draws
the seeds of its k-th iterator when that iterator is made, so after a restart the
trainer first makes, and drops, one iterator per completed epoch (no element is read):
epoch k then sees the same order as in the uninterrupted run. The trainer must make all
of the dataset's iterators for that to hold. Within the epoch the position is restored
by a deterministic skip: the batches already trained on are read again and dropped
(input pipeline only). TF 2.21's distributed iterators are not trackable (`Checkpoint`
rejects them), so the skip is the only way under MirroredStrategy and
MultiWorkerMirroredStrategy. Under the default strategy the iterator is a tf.data one and
`checkpoint_iterator=True` saves its state instead; it is off by default because that
state holds the buffers (a cache or shuffle buffer of decoded images is written into
every checkpoint: 48 MB for 1000 64x64 images) and because elements read before the
restart are then never decoded again, so `ReportDecodeErrors` would count them missing.

Multi-worker. Only the chief writes checkpoints (training/checkpoints.py). A worker
that dies makes its peers' collectives fail (`UnavailableError` and kin); the trainer
re-raises that as `WorkerFailedError`, naming the step, so that the job can restart all
workers, which then resume from the last checkpoint.
"""

import math
import re
from collections.abc import Callable, Iterable

import keras
import tensorflow as tf

from training.checkpoints import TrainingCheckpoint, TrainingState, is_chief
from training.pause_points import pause_if_requested
from training.steps import StepFunctions

PEER_FAILURES = (
    tf.errors.UnavailableError,
    tf.errors.DeadlineExceededError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
)


class WorkerFailedError(RuntimeError):
    """A peer worker of a multi-worker run failed or became unreachable."""


class Trainer:
    """Trains a compiled Keras model under a strategy, like `model.fit`, resuming exactly.

    Args:
        model: compiled (optimizer, loss, metrics) inside `strategy.scope()`.
        strategy: the strategy the model was built under (default: the current one).
        checkpoint_dir: where to checkpoint and resume from; None: no checkpoints.
        checkpoint_every: also checkpoint every this many global steps (None: only at
            the end of each epoch).
        callbacks: Keras callbacks, called as `fit` calls them (train begin/end, epoch
            begin/end with logs, train batch begin/end); `model.stop_training` stops
            training after the current batch.
        steps_per_epoch: at most this many batches per epoch (None: one pass over the data).
        checkpoint_iterator: under the default strategy, save the tf.data iterator's
            state instead of skipping the consumed batches on resume (see the module
            docstring; other strategies always skip). The restored iterator repeats the
            uninterrupted run's batches only under
            `tf.config.experimental.enable_op_determinism()` (tensorflow/tensorflow#56385);
            the default skip needs no such setting.
        max_to_keep: checkpoints kept in `checkpoint_dir` (>= 2).
        print_fn: where resume messages go.

    Example:
        >>> with strategy.scope():
        ...     model = build_model(...)
        ...     model.compile(optimizer="adam", loss="mse", metrics=["mae"])
        >>> trainer = Trainer(model, strategy, checkpoint_dir="ckpt", checkpoint_every=100)
        >>> history = trainer.fit(train_dataset, epochs=10, validation_data=val_dataset)
        >>> history["loss"], history["val_mae"]
    """

    def __init__(
        self,
        model: keras.Model,
        strategy: tf.distribute.Strategy | None = None,
        *,
        checkpoint_dir: str | None = None,
        checkpoint_every: int | None = None,
        callbacks: Iterable[keras.callbacks.Callback] = (),
        steps_per_epoch: int | None = None,
        checkpoint_iterator: bool = False,
        max_to_keep: int = 2,
        print_fn: Callable[[str], None] = print,
    ):
        if getattr(model, "optimizer", None) is None:
            raise ValueError("Trainer: the model is not compiled; call model.compile() first.")
        for name, value in (
            ("checkpoint_every", checkpoint_every),
            ("steps_per_epoch", steps_per_epoch),
        ):
            if value is not None and value < 1:
                raise ValueError(f"Trainer: {name} must be >= 1 or None, got {value}.")
        if checkpoint_every is not None and checkpoint_dir is None:
            raise ValueError("Trainer: checkpoint_every needs a checkpoint_dir.")
        self.model = model
        self.strategy = strategy or tf.distribute.get_strategy()
        self.checkpoint_dir = None if checkpoint_dir is None else str(checkpoint_dir)
        self.checkpoint_every = checkpoint_every
        self.callbacks = list(callbacks)
        self.steps_per_epoch = steps_per_epoch
        self.checkpoint_iterator = checkpoint_iterator
        self.max_to_keep = max_to_keep
        self.print_fn = print_fn
        self.is_chief = is_chief(self.strategy)
        self.state = TrainingState()
        self._steps = None
        self._checkpoint = None
        self._epochs = 0

    @property
    def multi_worker(self) -> bool:
        """Whether the strategy spans two or more worker processes."""
        if not isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return False
        cluster = self.strategy.cluster_resolver.cluster_spec()
        return sum(cluster.num_tasks(job) for job in cluster.jobs if job != "ps") > 1

    def fit(
        self,
        train_dataset: tf.data.Dataset,
        epochs: int,
        validation_data: tf.data.Dataset | None = None,
    ) -> dict[str, list[float]]:
        """Trains for `epochs` epochs (in all, counting those of a resumed run).

        Args:
            train_dataset: yields (x, y) or (x, y, sample_weight) global batches; its
                own auto-shard options apply under multi-worker.
            epochs: the number of epochs of the whole run.
            validation_data: evaluated at the end of each epoch (logs "val_*").

        Returns:
            The history: one list per log name, one value per epoch ("loss", the
            metrics, "val_loss", "val_" metrics).

        Raises:
            ValueError: the loss or the weights became non-finite (naming the step), or
                the dataset yielded no batch in an epoch.
            WorkerFailedError: a peer worker failed (multi-worker only).
        """
        if epochs < 1:
            raise ValueError(f"Trainer.fit: epochs must be >= 1, got {epochs}.")
        self._epochs = epochs
        self._steps = StepFunctions(self.model, self.strategy, train_dataset.element_spec)
        self.state = TrainingState()
        if self.checkpoint_dir is not None:
            objects = {**self._steps.checkpoint_objects(), "state": self.state}
            self._checkpoint = TrainingCheckpoint(
                self.checkpoint_dir, self.strategy, objects, self.max_to_keep
            )
        try:
            if self._resume():
                return {name: list(values) for name, values in self.state.history.items()}
            self._train(train_dataset, validation_data)
            pause_if_requested("trained", marker="after training")
        except PEER_FAILURES as error:
            if not self.multi_worker:
                raise
            if self.checkpoint_dir is None:
                resume = "; no checkpoint directory, so a restart trains from the start"
            else:
                resume = f" to resume from the last checkpoint in {self.checkpoint_dir}"
            raise WorkerFailedError(
                f"a peer worker failed or became unreachable "
                f"({lost_peers(error.message, self.strategy.cluster_resolver)}) after global "
                f"step {self.state.global_step} ({self.state.position()}); restart all "
                f"workers (the same command on each){resume}. "
                f"{type(error).__name__}: {brief(error.message)}"
            ) from error
        return {name: list(values) for name, values in self.state.history.items()}

    def _resume(self) -> bool:
        """Restores the last checkpoint; True when training already finished."""
        if self._checkpoint is None or self._checkpoint.restore() is None:
            return False
        state = self.state
        path = self._checkpoint.restored_path
        if state.finished and (state.stopped_early or state.epoch >= self._epochs):
            self.print_fn(
                f"Training already finished ({path}: {state.epoch} epoch(s), global step "
                f"{state.global_step}); skipping training."
            )
            return True
        state.finished = False
        self.print_fn(f"Resuming from {path}: {state.describe()}.")
        return False

    def _callback_list(self) -> keras.callbacks.CallbackList:
        return keras.callbacks.CallbackList(
            self.callbacks,
            add_history=False,
            add_progbar=False,
            model=self.model,
            verbose=1,
            epochs=self._epochs,
            steps=self.steps_per_epoch,
        )

    def _train(self, train_dataset: tf.data.Dataset, validation_data) -> None:
        state = self.state
        callbacks = self._callback_list()
        distributed_train = self.strategy.experimental_distribute_dataset(train_dataset)
        distributed_val = None
        if validation_data is not None:
            distributed_val = self.strategy.experimental_distribute_dataset(validation_data)
        for _ in range(state.epoch):
            iter(train_dataset)  # draws the reshuffle seeds of the epochs already done
        if self.checkpoint_iterator and distributed_train is not train_dataset:
            self.print_fn(
                f"{type(self.strategy).__name__}'s iterators cannot be checkpointed; a "
                "resumed epoch skips the batches already trained on instead."
            )
        self.model.stop_training = False
        callbacks.on_train_begin()
        logs = {}
        for epoch in range(state.epoch, self._epochs):
            logs = self._train_epoch(epoch, distributed_train, distributed_val, callbacks)
            if state.finished:
                break
        callbacks.on_train_end(logs)

    def _position_iterator(self, iterator) -> None:
        """Moves a fresh iterator of the epoch in progress past the batches already done."""
        state = self.state
        use_checkpoint = self.checkpoint_iterator and isinstance(iterator, tf.data.Iterator)
        if self._checkpoint is not None and use_checkpoint:
            self._checkpoint.attach_iterator(iterator)
        if state.step_in_epoch == 0:
            state.iterator_saved = use_checkpoint
            return
        if state.iterator_saved and use_checkpoint:
            self._checkpoint.restore_iterator(iterator)
        else:
            for _ in range(state.step_in_epoch):
                next(iterator)
        state.iterator_saved = use_checkpoint

    def _train_epoch(self, epoch, distributed_train, distributed_val, callbacks) -> dict:
        state = self.state
        callbacks.on_epoch_begin(epoch)
        if state.step_in_epoch == 0:
            self._steps.reset_metrics()  # a resumed epoch keeps the restored accumulators
        iterator = iter(distributed_train)
        self._position_iterator(iterator)
        while self.steps_per_epoch is None or state.step_in_epoch < self.steps_per_epoch:
            try:
                batch = next(iterator)
            except (StopIteration, tf.errors.OutOfRangeError):
                break
            batch_index = state.step_in_epoch
            callbacks.on_train_batch_begin(batch_index)
            loss, batch_logs = self._steps.train(batch)
            loss = float(loss)
            if not math.isfinite(loss):
                raise ValueError(
                    f"the loss became {loss} at global step {state.global_step + 1} (epoch "
                    f"{epoch + 1}, batch {batch_index + 1}); training stopped and no "
                    "checkpoint holds the weights of this step."
                )
            state.step_in_epoch += 1
            state.global_step += 1
            callbacks.on_train_batch_end(batch_index, to_floats(batch_logs))
            pause_if_requested("step", state.global_step, f"at step {state.global_step}")
            if self.checkpoint_every and state.global_step % self.checkpoint_every == 0:
                self._save()
            if self.model.stop_training:
                break
        if state.step_in_epoch == 0:
            raise ValueError(f"the training dataset yielded no batch in epoch {epoch + 1}.")
        logs = to_floats(self._steps.metric_results())
        if distributed_val is not None:
            logs.update(
                {f"val_{name}": value for name, value in self._validate(distributed_val).items()}
            )
        callbacks.on_epoch_end(epoch, logs)
        for name, value in logs.items():
            state.history.setdefault(name, []).append(value)
        state.epoch += 1
        state.step_in_epoch = 0
        state.stopped_early = bool(self.model.stop_training)
        state.finished = state.stopped_early or state.epoch >= self._epochs
        self._save()
        return logs

    def _validate(self, distributed_val) -> dict[str, float]:
        self._steps.reset_metrics()
        for batch in distributed_val:
            self._steps.test(batch)
        return to_floats(self._steps.metric_results())

    def _save(self) -> None:
        """Checks that the weights are finite, then checkpoints the state (given a directory).

        Called at each epoch's end even without checkpoints: a finite loss can still
        leave NaN weights behind (a NaN input through relu gives 0, its gradient NaN).
        """
        if not self._steps.weights_finite():
            raise ValueError(
                f"the weights became non-finite by global step {self.state.global_step} "
                f"({self.state.position()}) although the loss was finite; training stopped "
                "and no checkpoint holds them."
            )
        if self._checkpoint is None:
            return
        self.state.saves += 1
        self._checkpoint.save(self.state.saves)


def lost_peers(message: str, cluster_resolver) -> str:
    """The peer tasks a collective error names ("worker 1 at 127.0.0.1:2223"), else all peers.

    TensorFlow's message names the unhealthy tasks as "/job:worker/replica:0/task:1",
    after "The following tasks are unhealthy"; tasks named before that are this one's
    devices and the task that reported the error.
    """
    cluster = cluster_resolver.cluster_spec()
    own = (cluster_resolver.task_type, int(cluster_resolver.task_id))
    peers = [
        (job, index)
        for job in cluster.jobs
        for index in cluster.task_indices(job)
        if (job, index) != own
    ]
    unhealthy = message.find("unhealthy")
    named = {
        (job, int(index))
        for job, index in re.findall(
            r"/job:(\w+)(?:/replica:\d+)?/task:(\d+)", message[max(unhealthy, 0) :]
        )
    }
    lost = [peer for peer in peers if peer in named]
    described = ", ".join(
        f"{job} {index} at {cluster.task_address(job, index)}" for job, index in lost or peers
    )
    return described if lost or len(peers) == 1 else f"one of: {described}"


def brief(message: str, limit: int = 400) -> str:
    """A TF error message on one line, without its "{{function_node ...}}" prefix."""
    text = " ".join(re.sub(r"\{\{[^}]*\}\}", "", message).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def to_floats(logs: dict) -> dict[str, float]:
    return {name: float(value) for name, value in logs.items()}
