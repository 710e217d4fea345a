"""Per-element decode errors during training: dropped one by one, counted and named.

`Dataset.ignore_errors()` before `batch()` drops only the failing element, but
silently (shared/UPSTREAM.md, "Images"). `DecodeErrorLog.decode` applies a decode
map, then `ignore_errors()`, and records in two tables which elements went in
(index -> name) and which came out decoded; `ReportDecodeErrors` prints at the end
of each epoch how many failed and which files, then clears the tables.

Why tables and not a tf.Variable bitmap: a `tf.lookup.experimental.MutableHashTable`
needs no dataset size up front, keeps the names in-graph next to the indices, its
inserts are thread-safe under a parallel map, and it is not a variable, so creating
the log inside `strategy.scope()` does not turn it into a MirroredVariable that a
tf.data function cannot update. Both tables live on the host, where the input
pipeline runs, under the default strategy and MirroredStrategy alike.

An element that went in and did not come out has failed only if the pipeline ran
to its end: when an epoch stops early, elements still being decoded are cancelled and
look the same. So the decoded stream ends with an empty marker dataset that records
that the end was reached. Keras 3 `fit` reads the first epoch to its end, then keeps
that epoch's number of steps (the cardinality is unknown after `ignore_errors`) and
stops there; the prefetcher has usually run ahead to the end by then (checked in
tests/datasets/test_decode_errors.py). When it has not, the report says that the
epoch stopped early and calls the missing elements "failed or still in flight"
rather than naming good files as bad. Use a finite dataset, one pass per epoch.
"""

from collections.abc import Callable, Sequence

import keras
import tensorflow as tf


class DecodeErrorLog:
    """Which elements of one dataset failed to decode since the last `reset`.

    Args:
        name_key: the element field that names it in reports (an image path).
        index_key: the element field with its int64 index, unique within the dataset.

    Example:
        >>> log = DecodeErrorLog()
        >>> dataset = log.decode(records, lambda record: {"image": load(record)}).batch(32)
        >>> model.fit(dataset, callbacks=[ReportDecodeErrors(log)])
    """

    def __init__(self, name_key: str = "image_path", index_key: str = "index"):
        self.name_key = name_key
        self.index_key = index_key
        self.expected = None
        self.names = None
        self._attempted = tf.lookup.experimental.MutableHashTable(tf.int64, tf.string, "")
        self._decoded = tf.lookup.experimental.MutableHashTable(tf.int64, tf.int64, 0)
        self._ended = tf.lookup.experimental.MutableHashTable(tf.int64, tf.int64, 0)

    def decode(
        self,
        dataset: tf.data.Dataset,
        decode_fn: Callable[[dict], object],
        num_parallel_calls: int = tf.data.AUTOTUNE,
        names: Sequence[str] | None = None,
    ) -> tf.data.Dataset:
        """Maps `decode_fn` over `dataset`, dropping (and recording) the elements it fails on.

        Apply it before `batch()`, so that one bad element never takes its batch with it.

        Args:
            dataset: elements are dicts holding `index_key` (int64) and, unless `names`
                is given, `name_key` (string).
                `decode_fn` must return dense tensors of known rank.
            decode_fn: maps one element to what the next stage consumes; an op error
                inside it (corrupt bytes, a failed assertion) drops that element only.
            num_parallel_calls: parallelism of the decode map.
            names: the name of every element the dataset should yield, by index. An
                element lost upstream of this map (a file that cannot be read, a
                record missing from the shards) is then a failure too, named, instead
                of never being seen: `ignore_errors` drops errors of every stage above it.

        Returns:
            The dataset of `decode_fn`'s results, without the failed elements.

        Raises:
            ValueError: the elements are not dicts with both fields.
        """
        spec = dataset.element_spec
        required = (self.index_key,) if names is not None else (self.index_key, self.name_key)
        for key in required:
            if not isinstance(spec, dict) or key not in spec:
                raise ValueError(
                    f"datasets/decode_errors.py: dataset elements need the field {key!r}; "
                    f"element_spec is {spec}"
                )

        self.names = None if names is None else list(names)
        cardinality = int(dataset.cardinality())
        self.expected = len(self.names) if self.names is not None else None
        if self.expected is None and cardinality >= 0:
            self.expected = cardinality

        known_names = None if names is None else tf.constant(self.names, tf.string)

        def attempt(element: dict) -> dict:
            index = tf.cast(element[self.index_key], tf.int64)
            if known_names is None:
                name = element[self.name_key]
            else:
                name = tf.gather(known_names, index)
            inserted = self._attempted.insert(index, name)
            with tf.control_dependencies([inserted]):
                return {**element, self.index_key: tf.identity(index)}

        def decode_one(element: dict) -> tuple:
            return element[self.index_key], decode_fn(element)

        def record(index: tf.Tensor, result):
            with tf.control_dependencies([self._decoded.insert(index, tf.constant(1, tf.int64))]):
                return tf.nest.map_structure(tf.identity, result)

        dataset = dataset.map(attempt)
        dataset = dataset.map(decode_one, num_parallel_calls=num_parallel_calls)
        decoded = dataset.ignore_errors(log_warning=True).map(record)
        return decoded.concatenate(self._end_marker(decoded.element_spec))

    def _end_marker(self, element_spec) -> tf.data.Dataset:
        """An empty dataset of `element_spec` that records, when it is reached, the end."""

        def mark_end(_):
            key = tf.constant(0, tf.int64)
            with tf.control_dependencies([self._ended.insert(key, tf.constant(1, tf.int64))]):
                return tf.constant(False)

        def empty_like(_):
            return tf.nest.map_structure(
                lambda spec: tf.zeros([size or 0 for size in spec.shape], spec.dtype), element_spec
            )

        marker = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).map(mark_end)
        return marker.filter(lambda keep: keep).map(empty_like)

    def reached_end(self) -> bool:
        """Whether the decoded stream ran to its end since the last reset."""
        return bool(self._ended.size() > 0)

    def counts(self) -> tuple[int, int]:
        """(elements that went in, elements that came out decoded) since the last reset."""
        return int(self._attempted.size()), int(self._decoded.size())

    def failures(self) -> dict[int, str]:
        """index -> name of every element that did not come out decoded.

        With `names`, every expected element counts (also those lost before the
        decode map); without, those that went in. Exact once `reached_end()`; before
        that it also holds elements still in flight.
        """
        if self.names is not None:
            decoded = set(self._decoded.export()[0].numpy().tolist())
            return {index: name for index, name in enumerate(self.names) if index not in decoded}
        indices, names = self._attempted.export()
        decoded = self._decoded.lookup(indices).numpy()
        return {
            int(index): name.decode("utf-8", errors="replace")
            for index, name, decoded_count in zip(
                indices.numpy(), names.numpy(), decoded, strict=True
            )
            if decoded_count == 0
        }

    def reset(self) -> None:
        for table in (self._attempted, self._decoded, self._ended):
            table.remove(table.export()[0])


class ReportDecodeErrors(keras.callbacks.Callback):
    """Prints at each epoch's end how many elements failed to decode and which, then resets.

    Prints nothing for an epoch that ran to the end with no failures, nor for one
    whose data all came from a cache (nothing was decoded: the failures were reported
    in the epoch that filled it).

    Args:
        log: the DecodeErrorLog of the training dataset.
        label: what the dataset is, for the message ("training", "validation").
        max_names: at most this many files are named per epoch.
        print_fn: where the report goes.
        on_bad_example: "skip" reports and trains on; "error" raises ValueError at the
            end of the first epoch with a failure, naming the first failed file.

    Attributes:
        epochs: one dict per epoch: {"epoch", "attempted", "decoded", "complete",
            "failures"}, with failures as {index: name} and complete saying whether the
            epoch ran to the end of the data (if not, failures may hold elements that
            were still in flight).
    """

    def __init__(
        self,
        log: DecodeErrorLog,
        label: str = "training",
        max_names: int = 20,
        print_fn: Callable[[str], None] = print,
        on_bad_example: str = "skip",
    ):
        super().__init__()
        if on_bad_example not in ("skip", "error"):
            raise ValueError(f"on_bad_example must be 'skip' or 'error', got {on_bad_example!r}.")
        self.on_bad_example = on_bad_example
        self.log = log
        self.label = label
        self.max_names = max_names
        self.print_fn = print_fn
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        attempted, decoded = self.log.counts()
        failures = self.log.failures()
        complete = self.log.reached_end()
        self.log.reset()
        self.epochs.append(
            {
                "epoch": epoch,
                "attempted": attempted,
                "decoded": decoded,
                "complete": complete,
                "failures": failures,
            }
        )
        if attempted == 0 and not complete:
            return  # the data came from a cache: nothing was read or decoded this epoch
        if complete and not failures:
            return
        if complete and failures and self.on_bad_example == "error":
            index, name = min(failures.items())
            raise ValueError(
                f"{name}: a {self.label} image could not be read or decoded in epoch "
                f"{epoch + 1} ({len(failures)} failed in all; skip them with "
                "--on-bad-example skip)"
            )
        if complete:
            total = attempted if self.log.expected is None else self.log.expected
            message = (
                f"Epoch {epoch + 1}: {len(failures)} of {total} {self.label} elements "
                "could not be read or decoded and were skipped"
            )
        else:
            expected = "" if self.log.expected is None else f" of {self.log.expected}"
            message = (
                f"Epoch {epoch + 1} stopped before the end of the {self.label} data "
                f"({attempted}{expected} elements went in); {len(failures)} failed to decode "
                "or were still being decoded"
            )
        named = sorted(failures.items())[: self.max_names]
        lines = [f"  #{index}: {name}" for index, name in named]
        if len(failures) > len(named):
            lines.append(f"  ... and {len(failures) - len(named)} more")
        self.print_fn("\n".join([message + (":" if lines else "."), *lines]))
