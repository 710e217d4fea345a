"""Two MultiWorkerMirroredStrategy workers on 127.0.0.1 (tests/training/multi_worker_script.py):
identical weights, only the chief writes checkpoints and the export. A killed worker and
the restart of both are tested through train.py (test_train_multi_worker_kill.py).
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from tests.training.multi_worker_script import EPOCHS, STEPS_PER_EPOCH
from tests.training.processes import Script, free_ports

TOTAL_STEPS = EPOCHS * STEPS_PER_EPOCH


def start_workers(checkpoint_dir, output_dir, env_by_worker=({}, {})) -> list[Script]:
    output_dir.mkdir(parents=True, exist_ok=True)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    return [
        Script(
            "multi_worker_script.py",
            checkpoint_dir,
            output_dir,
            env={
                "TF_CONFIG": json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": index}}
                ),
                **env,
            },
        )
        for index, env in enumerate(env_by_worker)
    ]


def finish_all(workers: list[Script]) -> None:
    for index, worker in enumerate(workers):
        assert worker.finish(timeout=180) == 0, f"worker {index}:\n{worker.output}"


def load(path) -> dict:
    saved = np.load(path)
    return {
        "weights": [saved[f"arr_{index}"] for index in range(len(saved.files) - 2)],
        "iterations": int(saved["iterations"]),
        "history": json.loads(str(saved["history"])),
    }


def assert_same_weights(first: dict, second: dict) -> None:
    assert len(first["weights"]) == len(second["weights"]) == 4
    for got, want in zip(first["weights"], second["weights"], strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The output folder of one two-worker run that nothing interrupts."""
    root = tmp_path_factory.mktemp("uninterrupted")
    finish_all(start_workers(root / "checkpoints", root / "output"))
    return root


@pytest.mark.slow
def test_two_workers_end_with_identical_weights_and_only_the_chief_writes(uninterrupted):
    output, checkpoints = uninterrupted / "output", uninterrupted / "checkpoints"
    chief, worker = load(output / "worker-0.npz"), load(output / "worker-1.npz")
    assert chief["iterations"] == worker["iterations"] == TOTAL_STEPS
    assert_same_weights(chief, worker)
    assert chief["history"] == worker["history"]
    assert chief["history"]["loss"][-1] < chief["history"]["loss"][0]
    assert (output / "export.npz").exists()  # written by the chief alone (is_chief)

    chief_writes = (output / "writes-0.txt").read_text().split()
    worker_writes = (output / "writes-1.txt").read_text().split()
    assert len(chief_writes) == len(worker_writes) > 0  # every worker joins every save
    assert all(path.startswith(f"{checkpoints}/ckpt-") for path in chief_writes)
    assert not any(path.startswith(str(checkpoints)) for path in worker_writes)
    assert all("workertemp_" in path for path in worker_writes)
    last = len(chief_writes)
    assert sorted(path.name for path in checkpoints.iterdir()) == [
        "checkpoint",
        f"ckpt-{last - 1}.data-00000-of-00001",
        f"ckpt-{last - 1}.index",
        f"ckpt-{last}.data-00000-of-00001",
        f"ckpt-{last}.index",
    ]


def test_the_lost_peer_is_named_from_the_collective_error():
    from training.loop import lost_peers

    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec({"worker": ["127.0.0.1:2221", "127.0.0.1:2222", "127.0.0.1:2223"]}),
        task_type="worker",
        task_id=0,
    )
    # As TF 2.21 words it (this task's own device comes first).
    message = (
        "{{function_node __wrapped__CollectiveReduceV2_device_/job:worker/replica:0/task:0/"
        "device:CPU:0}} Collective ops is aborted by: Error reported from /job:worker/task:1: "
        "The following tasks are unhealthy (stopped sending heartbeats):\n"
        "/job:worker/replica:0/task:2\nThe tasks have crashed."
    )
    assert lost_peers(message, resolver) == "worker 2 at 127.0.0.1:2223"
    assert lost_peers("Socket closed", resolver) == (
        "one of: worker 1 at 127.0.0.1:2222, worker 2 at 127.0.0.1:2223"
    )
