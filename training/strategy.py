"""Picks the tf.distribute strategy named on the command line (`--strategy`).

`auto` takes, in this order: a TPU when one can be reached (TPU_NAME, TPU_CONFIG or
KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS name one, or, unless TF_CONFIG names a cluster, a
Cloud TPU VM's own chips), parameter server training when TF_CONFIG names "ps"
tasks, MultiWorkerMirroredStrategy when TF_CONFIG names more than one worker (its
"worker" tasks plus its "chief"), MirroredStrategy over two or more local GPUs,
else the default strategy.

Create the strategy at program start, before any other TensorFlow op runs:
MultiWorkerMirroredStrategy configures collective ops, which TensorFlow refuses
once its runtime has started ("Collective ops must be configured at program
startup"), and connecting to a remote TPU or a parameter-server cluster replaces
the eager context, so tensors made before it are lost.
"""

import contextlib
import glob
import json
import os
import socket

import tensorflow as tf

STRATEGIES = (
    "auto",
    "default",
    "one_device",
    "mirrored",
    "multi_worker",
    "tpu",
    "parameter_server",
)
# The variables a TPUClusterResolver reads to find a TPU by name or address.
TPU_ENVIRONMENT = ("TPU_NAME", "TPU_CONFIG", "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS")
# Where a Cloud TPU VM exposes its chips (v2-v4: /dev/accel*, v5e and later: /dev/vfio).
LOCAL_TPU_DEVICES = ("/dev/accel*", "/dev/vfio/[0-9]*")
# A named TPU is looked up on the GCE metadata server, with no timeout of its own.
TPU_LOOKUP_TIMEOUT_SECONDS = 10.0
_TPU_ERRORS = (ValueError, RuntimeError, OSError, ImportError, tf.errors.OpError)
# The names tf.distribute exports for strategy classes that go by another name.
PUBLIC_NAMES = {
    "_DefaultDistributionStrategy": "DefaultStrategy",
    "CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy",
    "TPUStrategyV2": "TPUStrategy",
    "ParameterServerStrategyV2": "ParameterServerStrategy",
}


def tf_config() -> dict:
    """The parsed TF_CONFIG environment variable, {} when it is unset or empty.

    Raises:
        ValueError: TF_CONFIG is not a JSON object.
    """
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error}): {text[:200]!r}") from error
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object with a 'cluster'; got {text[:200]!r}")
    return config


def cluster_tasks(config: dict, task_type: str) -> int:
    """How many tasks of `task_type` ("worker", "chief", "ps") TF_CONFIG's cluster names."""
    cluster = config.get("cluster") or {}
    if not isinstance(cluster, dict):
        raise ValueError(f"TF_CONFIG's 'cluster' must map task types to addresses; got {cluster!r}")
    return len(cluster.get(task_type) or ())


def worker_count(config: dict) -> int:
    """The workers of a MultiWorkerMirroredStrategy cluster: its "worker" tasks plus its "chief"."""
    return cluster_tasks(config, "worker") + cluster_tasks(config, "chief")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """Returns the strategy `name` (one of STRATEGIES); call it before any other TF op.

    Raises:
        ValueError: an unknown name; `tpu` with no TPU found (naming what was tried);
            `parameter_server` without a TF_CONFIG cluster of ps and worker tasks;
            `multi_worker` created after TensorFlow's runtime has started.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; expected one of {STRATEGIES}.")
    if name == "auto":
        config = tf_config()
        cluster = cluster_tasks(config, "ps") or worker_count(config) > 1
        # Initialising absent local chips starts TF's runtime, after which
        # MultiWorkerMirroredStrategy can no longer be made: a cluster skips them.
        resolver, _ = find_tpu(local=not cluster and bool(_local_tpu_devices()))
        if resolver is not None:
            return tf.distribute.TPUStrategy(resolver)
        if cluster_tasks(config, "ps"):
            name = "parameter_server"
        elif worker_count(config) > 1:
            name = "multi_worker"
        else:
            name = "mirrored" if len(tf.config.list_logical_devices("GPU")) >= 2 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return _multi_worker_strategy()
    if name == "tpu":
        return _tpu_strategy()
    return _parameter_server_strategy()


def _multi_worker_strategy() -> tf.distribute.Strategy:
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as error:
        if "program startup" not in str(error):
            raise
        raise ValueError(
            "--strategy multi_worker: MultiWorkerMirroredStrategy must be created at program "
            "start, before any other TensorFlow op runs (TensorFlow: "
            f"{error}); call make_strategy first."
        ) from error


def _tpu_strategy() -> tf.distribute.Strategy:
    resolver, attempts = find_tpu(local=True)
    if resolver is None:
        raise ValueError(
            "--strategy tpu found no TPU. Tried: "
            + "; ".join(attempts)
            + ". It needs a Cloud TPU VM (its chips are found by themselves) or TPU_NAME "
            "naming a Cloud TPU (or grpc://HOST:PORT of one)."
        )
    return tf.distribute.TPUStrategy(resolver)


def find_tpu(local: bool) -> tuple[tf.distribute.cluster_resolver.TPUClusterResolver | None, list]:
    """Connects to a TPU and initialises it, or falls through quickly when there is none.

    Tries TPUClusterResolver(), which finds the TPU that TPU_ENVIRONMENT names,
    then (with `local`) the chips of this VM. Without a TPU neither attempt
    hangs: TPUClusterResolver() raises at once when nothing is named, a named
    TPU's metadata lookup is bounded by TPU_LOOKUP_TIMEOUT_SECONDS, and
    initialising absent local chips fails in a fraction of a second.

    Args:
        local: also try the chips attached to this machine (`tpu="local"`).

    Returns:
        (the connected resolver or None, what was tried and why it failed).
    """
    attempts = []
    candidates = [(f"TPUClusterResolver() (reads {', '.join(TPU_ENVIRONMENT)})", None)]
    if local:
        candidates.append(('TPUClusterResolver(tpu="local")', "local"))
    for description, tpu in candidates:
        try:
            with _socket_timeout(TPU_LOOKUP_TIMEOUT_SECONDS):
                resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
                tf.config.experimental_connect_to_cluster(resolver)
                tf.tpu.experimental.initialize_tpu_system(resolver)
        except _TPU_ERRORS as error:
            lines = str(error).strip().splitlines() or [repr(error)]
            attempts.append(f"{description} ({type(error).__name__}: {lines[0][:200]})")
            continue
        return resolver, attempts
    if not local:
        attempts.append(f"no local TPU chips (none under {', '.join(LOCAL_TPU_DEVICES)})")
    return None, attempts


def _local_tpu_devices() -> list[str]:
    return [path for pattern in LOCAL_TPU_DEVICES for path in glob.glob(pattern)]


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    """Bounds the blocking socket calls (urllib's metadata lookups) made inside the block."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _parameter_server_strategy() -> tf.distribute.Strategy:
    """ParameterServerStrategy for the chief (coordinator) of a TF_CONFIG cluster.

    Keras 3 `Model.fit` does not drive a ClusterCoordinator, so it does not train
    under this strategy (keras-team/keras#18624); custom training loops do.
    """
    config = tf_config()
    ps, workers = cluster_tasks(config, "ps"), cluster_tasks(config, "worker")
    if not ps or not workers:
        raise ValueError(
            "--strategy parameter_server needs TF_CONFIG naming a cluster with 'ps' and "
            f"'worker' tasks (and the 'chief' task that runs training); TF_CONFIG names {ps} "
            f"ps and {workers} worker task(s)."
        )
    task_type = (config.get("task") or {}).get("type")
    if task_type in ("worker", "ps", "evaluator"):
        raise ValueError(
            f"TF_CONFIG's task is a {task_type!r}: in parameter server training only the chief "
            "runs training; a worker or ps task runs tf.distribute.Server(cluster_spec, "
            "job_name, task_index).join() instead."
        )
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    return tf.distribute.experimental.ParameterServerStrategy(resolver)


def describe(strategy: tf.distribute.Strategy, global_batch: int) -> str:
    """A log line naming the strategy, its replicas and the examples each replica gets.

    Raises:
        ValueError: `global_batch` is not a positive multiple of the replicas.
    """
    replicas = strategy.num_replicas_in_sync
    name = PUBLIC_NAMES.get(type(strategy).__name__, type(strategy).__name__)
    if global_batch < 1 or global_batch % replicas:
        lower = global_batch // replicas * replicas
        choices = f"{lower} or {lower + replicas}" if lower else f"{replicas}"
        raise ValueError(
            f"--batch-size {global_batch} (the global batch) must be a positive multiple of the "
            f"{replicas} replicas of {name}, so that every replica gets the same share; "
            f"use {choices}."
        )
    return (
        f"strategy: {name}, {replicas} replica(s), {global_batch // replicas} examples per "
        f"replica (global batch {global_batch})"
    )


def scaled_learning_rate(rate: float, replicas: int, scale: bool) -> float:
    """The learning rate for `replicas` replicas: `rate * replicas` when `scale`
    (`--scale-learning-rate`), else `rate`.

    The linear scaling rule (Goyal et al. 2017, "Accurate, Large Minibatch SGD"):
    `rate` is tuned for one replica's batch, and the global batch grows with the
    replicas, so the rate grows with it. Large factors want a warmup.

    Raises:
        ValueError: `rate` is not positive or `replicas` is below 1.
    """
    if not rate > 0:
        raise ValueError(f"The learning rate must be > 0, got {rate}.")
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}.")
    return rate * replicas if scale else rate
