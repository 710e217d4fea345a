"""train.py under tf.distribute across processes, and resuming from --checkpoint-dir."""

import json

import pytest

from tests.training.processes import Script, free_ports

TINY = ["--dataset", "shapes:48,8,8", "--epochs", "1", "--batch-size", "8", "--image-size", "32"]


def metrics_table(output: str) -> str:
    """The evaluation table train.py prints (rows starting with '|')."""
    return "\n".join(line for line in output.splitlines() if line.startswith("| "))


@pytest.mark.slow
def test_two_workers_train_together_and_only_the_chief_exports(tiny_shapes_world, tmp_path):
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    flags = ["--model", "image_only", *TINY, "--strategy", "multi_worker"]
    flags += ["--checkpoint-dir", str(tmp_path / "checkpoints")]
    flags += ["--export-dir", str(tmp_path / "export")]
    environment = {"MMZOO_DATA_DIR": str(tiny_shapes_world.parent)}
    runs = [
        Script(
            "../../train.py",
            *flags,
            env={
                **environment,
                "TF_CONFIG": json.dumps(
                    {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
                ),
            },
        )
        for index in range(2)
    ]
    codes = [run.finish(timeout=400) for run in runs]
    assert codes == [0, 0], "\n\n".join(run.output[-3000:] for run in runs)
    for run in runs:
        assert "MultiWorkerMirroredStrategy, 2 replica(s), 4 examples per replica" in run.output
    # Same weights on both workers: the same evaluation, to the last digit printed.
    assert metrics_table(runs[0].output) == metrics_table(runs[1].output) != ""
    assert [path.name for path in (tmp_path / "export").iterdir()] == ["1"]
    assert "exported image_only" in runs[0].output
    assert "exported" not in runs[1].output


@pytest.mark.slow
def test_a_finished_run_restarted_with_its_checkpoint_dir_does_not_train_again(
    tiny_shapes_world, tmp_path
):
    flags = ["--model", "image_only", *TINY, "--checkpoint-dir", str(tmp_path / "checkpoints")]
    flags += ["--checkpoint-every", "5", "--no-export"]
    environment = {"MMZOO_DATA_DIR": str(tiny_shapes_world.parent)}
    first = Script("../../train.py", *flags, env=environment)
    assert first.finish(timeout=300) == 0, first.output[-3000:]
    second = Script("../../train.py", *flags, env=environment)
    assert second.finish(timeout=300) == 0, second.output[-3000:]
    assert "Training already finished" in second.output
    assert "training took" in second.output and " (0 steps)" in second.output
    assert metrics_table(first.output) == metrics_table(second.output) != ""
