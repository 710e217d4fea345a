"""Strategy choice: TF_CONFIG and TPU detection, the error messages, the batch and rate checks.

MultiWorkerMirroredStrategy, TPU initialisation and ParameterServerStrategy
change process-wide TensorFlow state, so they run in subprocesses.
"""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import tensorflow as tf

from tests.training.processes import free_ports
from training import strategy as strategy_module
from training.strategy import (
    STRATEGIES,
    cluster_tasks,
    describe,
    make_strategy,
    scaled_learning_rate,
    tf_config,
    worker_count,
)

ROOT = Path(__file__).resolve().parents[2]


def cluster_config(task_type="worker", index=0, **tasks) -> str:
    cluster = {name: [f"localhost:{port}" for port in free_ports(n)] for name, n in tasks.items()}
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


CLUSTER_VARIABLES = ("TF_CONFIG", *strategy_module.TPU_ENVIRONMENT)


def run_python(script: str, **env: str) -> subprocess.Popen:
    """Starts `script` in a fresh interpreter at the repository root, without the
    cluster variables of this process (an empty TPU_NAME still names a TPU)."""
    inherited = {key: value for key, value in os.environ.items() if key not in CLUSTER_VARIABLES}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        env={**inherited, "TF_CPP_MIN_LOG_LEVEL": "2", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def last_json(process: subprocess.Popen, timeout: int = 120) -> dict:
    """The JSON object the script printed last; fails with its stderr when it failed."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"the subprocess ran past {timeout} s: {stderr[-3000:]}")
    assert process.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture
def no_cluster(monkeypatch):
    """No TF_CONFIG and no TPU named, whatever the machine running the tests sets."""
    for variable in CLUSTER_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def test_the_strategy_names_the_command_line_offers():
    assert STRATEGIES == (
        "auto",
        "default",
        "one_device",
        "mirrored",
        "multi_worker",
        "tpu",
        "parameter_server",
    )


def test_an_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="'mirror'.*multi_worker.*parameter_server"):
        make_strategy("mirror")


@pytest.mark.parametrize(
    "tasks, workers",
    [
        ({}, 0),
        ({"worker": 1}, 1),
        ({"worker": 2}, 2),
        ({"chief": 1}, 1),
        ({"chief": 1, "worker": 1}, 2),
        ({"chief": 1, "worker": 3, "evaluator": 1}, 4),
        ({"chief": 1, "worker": 2, "ps": 1}, 3),
    ],
)
def test_tf_config_workers_are_its_worker_tasks_plus_its_chief(monkeypatch, tasks, workers):
    monkeypatch.setenv("TF_CONFIG", cluster_config(**tasks))
    assert worker_count(tf_config()) == workers


def test_no_or_empty_tf_config_is_no_cluster(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert tf_config() == {} and worker_count(tf_config()) == 0
    monkeypatch.setenv("TF_CONFIG", "  ")
    assert tf_config() == {}


@pytest.mark.parametrize(
    "text, message",
    [("{cluster:", "TF_CONFIG is not valid JSON"), ("[1, 2]", "TF_CONFIG must be a JSON object")],
)
def test_a_malformed_tf_config_is_named(monkeypatch, text, message):
    monkeypatch.setenv("TF_CONFIG", text)
    with pytest.raises(ValueError, match=message):
        make_strategy("auto")


def test_a_tf_config_cluster_that_is_not_a_mapping_is_named(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": ["localhost:1"]}))
    with pytest.raises(ValueError, match="'cluster' must map task types"):
        cluster_tasks(tf_config(), "worker")


@pytest.fixture
def chosen(monkeypatch, no_cluster):
    """Replaces the cluster strategies by their names, so that `auto`'s choice is
    checked without creating them in this process."""
    monkeypatch.setattr(strategy_module, "_multi_worker_strategy", lambda: "multi_worker")
    monkeypatch.setattr(strategy_module, "_parameter_server_strategy", lambda: "parameter_server")


@pytest.mark.parametrize(
    "tasks, expected",
    [
        ({"worker": 2}, "multi_worker"),
        ({"chief": 1, "worker": 1}, "multi_worker"),
        ({"chief": 1, "worker": 2, "ps": 1}, "parameter_server"),
    ],
)
def test_auto_follows_a_tf_config_cluster(chosen, monkeypatch, tasks, expected):
    monkeypatch.setenv("TF_CONFIG", cluster_config(**tasks))
    assert make_strategy("auto") == expected


@pytest.mark.parametrize(
    "config",
    [None, cluster_config(worker=1), cluster_config(chief=1)],
    ids=["no_tf_config", "one_worker", "one_chief"],  # the ports differ between collections
)
def test_auto_without_a_cluster_tpu_or_gpus_is_the_default_strategy(chosen, monkeypatch, config):
    if config is not None:
        monkeypatch.setenv("TF_CONFIG", config)
    if len(tf.config.list_logical_devices("GPU")) >= 2:
        pytest.skip("two GPUs: auto mirrors")
    assert make_strategy("auto") is tf.distribute.get_strategy()


@pytest.mark.parametrize(
    "config, tries_local",
    [(None, True), (cluster_config(worker=2), False)],
    ids=["no_tf_config", "two_workers"],
)
def test_auto_tries_local_chips_only_outside_a_cluster(chosen, monkeypatch, config, tries_local):
    """Initialising absent chips starts TF's runtime, which would stop a multi-worker strategy."""
    if config is not None:
        monkeypatch.setenv("TF_CONFIG", config)
    asked = []
    monkeypatch.setattr(strategy_module, "_local_tpu_devices", lambda: ["/dev/accel0"])
    monkeypatch.setattr(
        strategy_module, "find_tpu", lambda local: asked.append(local) or (None, [])
    )
    make_strategy("auto")
    assert asked == [tries_local]


def test_auto_falls_through_the_tpu_check_at_once_without_a_tpu(no_cluster):
    started = time.perf_counter()
    resolver, attempts = strategy_module.find_tpu(local=False)
    seconds = time.perf_counter() - started
    assert resolver is None and seconds < 1.0, (seconds, attempts)
    assert "Please provide a TPU Name" in attempts[0]


def test_a_named_tpu_that_cannot_be_looked_up_is_reported_not_raised(no_cluster, monkeypatch):
    # The metadata server is asked at an address that refuses at once, without a proxy.
    monkeypatch.setenv("TPU_NAME", "my-tpu")
    monkeypatch.setenv("GCE_METADATA_HOST", f"127.0.0.1:{free_ports(1)[0]}")
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")
    started = time.perf_counter()
    resolver, attempts = strategy_module.find_tpu(local=False)
    assert resolver is None and time.perf_counter() - started < 5.0
    assert "TPUClusterResolver()" in attempts[0] and "URLError" in attempts[0], attempts


def test_tpu_without_a_tpu_says_what_was_tried_and_what_it_needs():
    """In a subprocess: trying the local chips initialises (and clears) TF's caches."""
    process = run_python(
        """
        import json, time
        from training.strategy import make_strategy
        started = time.perf_counter()
        try:
            make_strategy("tpu")
            message = None
        except ValueError as error:
            message = str(error)
        print(json.dumps({"message": message, "seconds": time.perf_counter() - started}))
        """,
    )
    result = last_json(process)
    message = result["message"]
    assert message is not None and result["seconds"] < 10, result
    for expected in (
        "--strategy tpu found no TPU",
        "TPUClusterResolver()",
        'TPUClusterResolver(tpu="local")',
        "Cloud TPU VM",
        "TPU_NAME",
    ):
        assert expected in message, message


def test_parameter_server_needs_a_cluster_of_ps_and_workers(no_cluster, monkeypatch):
    with pytest.raises(ValueError, match="needs TF_CONFIG naming a cluster with 'ps' and 'worker'"):
        make_strategy("parameter_server")
    monkeypatch.setenv("TF_CONFIG", cluster_config(chief=1, worker=2))
    with pytest.raises(ValueError, match="names 0 ps and 2 worker"):
        make_strategy("parameter_server")


def test_a_parameter_server_worker_task_is_told_to_run_a_server(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", cluster_config("worker", chief=1, worker=1, ps=1))
    with pytest.raises(ValueError, match=r"task is a 'worker'.*tf\.distribute\.Server"):
        make_strategy("parameter_server")


MULTI_WORKER_SCRIPT = """
    import json
    import tensorflow as tf
    from training.strategy import describe, make_strategy
    strategy = make_strategy("auto")
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    print(json.dumps({"multi_worker": multi_worker,
                      "replicas": strategy.num_replicas_in_sync,
                      "line": describe(strategy, 8)}))
"""


@pytest.mark.slow
def test_two_tf_config_workers_make_one_multi_worker_strategy_of_two_replicas():
    ports = free_ports(2)
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    processes = [
        run_python(
            MULTI_WORKER_SCRIPT,
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
        )
        for i in range(2)
    ]
    results = [last_json(process) for process in processes]
    for result in results:
        assert result["multi_worker"] and result["replicas"] == 2
        assert result["line"] == (
            "strategy: MultiWorkerMirroredStrategy, 2 replica(s), 4 examples per replica "
            "(global batch 8)"
        )


@pytest.mark.slow
def test_multi_worker_after_other_tensorflow_ops_says_to_create_it_first():
    process = run_python(
        """
        import json
        import tensorflow as tf
        from training.strategy import make_strategy
        tf.reduce_sum(tf.ones([2]))
        try:
            make_strategy("multi_worker")
            message = None
        except ValueError as error:
            message = str(error)
        print(json.dumps({"message": message}))
        """,
        TF_CONFIG=cluster_config(worker=1),
    )
    message = last_json(process)["message"]
    assert message and "must be created at program start" in message, message
    assert "Collective ops must be configured at program startup" in message


@pytest.mark.slow
def test_parameter_server_strategy_is_made_for_the_chief_of_a_ps_cluster():
    """An in-process cluster (as TensorFlow's parameter server tutorial runs one): the
    worker and ps servers start in the subprocess before the chief connects."""
    process = run_python(
        """
        import json, os
        import tensorflow as tf
        from training.strategy import make_strategy
        config = json.loads(os.environ["TF_CONFIG"])
        spec = tf.train.ClusterSpec(config["cluster"])
        servers = [tf.distribute.Server(spec, job_name=job, task_index=0, protocol="grpc")
                   for job in ("worker", "ps")]
        strategy = make_strategy("auto")
        expected = tf.distribute.experimental.ParameterServerStrategy
        print(json.dumps({"parameter_server": isinstance(strategy, expected)}))
        """,
        TF_CONFIG=cluster_config("chief", chief=1, worker=1, ps=1),
    )
    assert last_json(process)["parameter_server"]


class Replicas:
    """A stand-in strategy with `count` replicas (describe reads nothing else)."""

    def __init__(self, count: int):
        self.num_replicas_in_sync = count


def test_describe_names_the_strategy_replicas_and_per_replica_batch():
    assert describe(tf.distribute.get_strategy(), 64) == (
        "strategy: DefaultStrategy, 1 replica(s), 64 examples per replica (global batch 64)"
    )
    assert describe(Replicas(4), 64).endswith(
        "4 replica(s), 16 examples per replica (global batch 64)"
    )


@pytest.mark.parametrize("batch, choices", [(30, "use 28 or 32"), (3, "use 4"), (0, "use 4")])
def test_describe_refuses_a_global_batch_the_replicas_do_not_divide(batch, choices):
    with pytest.raises(ValueError, match=rf"--batch-size {batch} .* multiple of the 4 replicas"):
        describe(Replicas(4), batch)
    with pytest.raises(ValueError, match=choices):
        describe(Replicas(4), batch)


def test_scaled_learning_rate_is_linear_in_the_replicas_when_asked():
    assert scaled_learning_rate(1e-3, 8, scale=True) == pytest.approx(8e-3)
    assert scaled_learning_rate(1e-3, 8, scale=False) == 1e-3
    assert scaled_learning_rate(1e-3, 1, scale=True) == 1e-3
    with pytest.raises(ValueError, match="replicas must be >= 1"):
        scaled_learning_rate(1e-3, 0, scale=True)
    with pytest.raises(ValueError, match="learning rate must be > 0"):
        scaled_learning_rate(0.0, 2, scale=True)
