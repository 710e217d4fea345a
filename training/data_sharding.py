"""How a multi-worker strategy splits the training stream among its workers (auto-sharding).

MultiWorkerMirroredStrategy rewrites each worker's copy of the input pipeline
by the dataset's `auto_shard_policy`:

- FILE: each worker reads whole files of its own (file i goes to worker i mod
  N). Nothing is read twice, but it needs at least as many files as workers.
  TFRecord shards (`'shards/train-*.tfrecord'`, datasets/tfrecords.py) are read
  this way.
- DATA: each worker runs the whole pipeline and keeps every N-th batch. It
  works for any source (image files named in memory, TFDS), at the cost of
  every worker decoding every image, and only if all workers see the elements
  in the same order: the same shuffle seed (TaskOptions.seed) and deterministic
  parallel stages, which `with_shard_policy` turns on.
"""

from collections.abc import Sequence

import tensorflow as tf

from datasets.image_sources import RecordImages
from datasets.tfrecords import is_shard_spec, shard_files

AutoShardPolicy = tf.data.experimental.AutoShardPolicy


def shard_policy_for(spec_or_source, num_workers: int | None = None) -> AutoShardPolicy:
    """FILE for TFRecord shards, DATA for every other source.

    Args:
        spec_or_source: a `--dataset` SPEC string, an image source
            (datasets.image_sources) or examples that carry one (`.images`).
        num_workers: when given, shards fewer than this fall back to DATA (FILE
            would fail: a worker would get no file).

    Returns:
        The tf.data.experimental.AutoShardPolicy to set with `with_shard_policy`.

    Example:
        >>> shard_policy_for("shards/train-*.tfrecord") == AutoShardPolicy.FILE
        True
        >>> shard_policy_for("captions.json") == AutoShardPolicy.DATA
        True
    """
    files = _shard_files(spec_or_source)
    if files is None or (num_workers is not None and len(files) < num_workers):
        return AutoShardPolicy.DATA
    return AutoShardPolicy.FILE


def _shard_files(spec_or_source) -> Sequence[str] | None:
    """The TFRecord files a spec or source reads, None when it is not TFRecord shards."""
    if isinstance(spec_or_source, str):
        if not is_shard_spec(spec_or_source):
            return None
        return shard_files(spec_or_source)
    if isinstance(spec_or_source, RecordImages):
        return spec_or_source.files
    images = getattr(spec_or_source, "images", None)
    return None if images is None else _shard_files(images)


def with_shard_policy(dataset: tf.data.Dataset, policy: AutoShardPolicy) -> tf.data.Dataset:
    """`dataset` with `options().experimental_distribute.auto_shard_policy = policy`.

    DATA also makes the order deterministic (`options().deterministic`), since
    every worker must produce the same sequence for "every N-th batch" to split
    it; without it, parallel decoding hands elements on in a different order on
    each worker, and workers train on overlapping data.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policy
    if policy == AutoShardPolicy.DATA:
        options.deterministic = True
    return dataset.with_options(options)
