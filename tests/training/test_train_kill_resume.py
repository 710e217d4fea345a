"""Exact resume through train.py with the zoo pipeline: a `--deterministic` run with
`--checkpoint-dir` SIGKILLed at a random step, again inside a checkpoint save in the same
epoch, and once more after training but before the export, restarted with the same
command each time, ends with the uninterrupted run's optimizer steps and weights.

The kills land where MMZOO_TEST_PAUSE (training/pause_points.py) stops the process, never
on timing; the step is drawn at random from a fixed seed.
"""

import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.training.checkpoint_files import recorded_checkpoint, save_steps
from tests.training.processes import Script

EPOCHS = 2
STEPS_PER_EPOCH = 12  # 96 match/mismatch pairs of the 48 training images, batches of 8
CHECKPOINT_EVERY = 5
TOTAL_STEPS = EPOCHS * STEPS_PER_EPOCH
ITERATIONS = "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"


def exported_model(export_dir) -> keras.Model:
    import models  # noqa: F401  (registers the zoo's layers for loading)

    return keras.saving.load_model(export_dir / "1" / "assets.extra" / "model.keras")


@pytest.mark.slow
def test_train_py_killed_three_times_ends_as_the_uninterrupted_run(tiny_shapes_world, tmp_path):
    rng = random.Random(20261201)
    saves = save_steps(EPOCHS, STEPS_PER_EPOCH, CHECKPOINT_EVERY)
    environment = {"MMZOO_DATA_DIR": str(tiny_shapes_world.parent)}

    def train(name: str, pause: str | None = None) -> Script:
        flags = ["--model", "image_only", "--dataset", "shapes:48,8,8", "--epochs", str(EPOCHS)]
        flags += ["--batch-size", "8", "--image-size", "16", "--deterministic"]
        flags += ["--checkpoint-dir", str(tmp_path / f"{name}_checkpoints")]
        flags += ["--checkpoint-every", str(CHECKPOINT_EVERY)]
        flags += ["--export-dir", str(tmp_path / f"{name}_export")]
        pause_env = {"MMZOO_TEST_PAUSE": pause} if pause else {}
        return Script("../../train.py", *flags, env={**environment, **pause_env})

    def killed_at(pause: str, marker: str) -> Script:
        run = train("resumed", pause)
        run.wait_for(f"mmzoo: paused {marker}", timeout=300)
        run.kill()
        return run

    reference = train("reference")  # runs alongside the first killed run
    checkpoints = tmp_path / "resumed_checkpoints"

    # 1. Killed at a random step of the second epoch, before any checkpoint of that step.
    first_kill = rng.randint(STEPS_PER_EPOCH + 1, 2 * CHECKPOINT_EVERY + STEPS_PER_EPOCH - 4)
    killed_at(f"step:{first_kill}", f"at step {first_kill}")
    saved = sum(step < first_kill for step in saves)
    assert recorded_checkpoint(checkpoints) == saved
    assert reference.finish(timeout=300) == 0, reference.output[-3000:]

    # 2. Resumed in the same epoch; killed inside its first save, once that checkpoint's
    # files are written and before the `checkpoint` file points at them.
    in_save = saved + 1
    second = killed_at(f"save:{in_save}", f"in save {in_save}")
    resumed_at = saves[saved - 1]
    assert (
        f"Resuming from {checkpoints}/ckpt-{saved}: epoch 2, "
        f"{resumed_at - STEPS_PER_EPOCH} batch(es) into it, global step {resumed_at}."
    ) in second.output
    assert (checkpoints / f"ckpt-{in_save}.index").exists()
    assert recorded_checkpoint(checkpoints) == saved

    # 3. Resumed from the same checkpoint; killed after training, before the export.
    third = killed_at("trained", "after training")
    assert f"Resuming from {checkpoints}/ckpt-{saved}: epoch 2," in third.output
    assert recorded_checkpoint(checkpoints) == len(saves)
    assert not (tmp_path / "resumed_export").exists()

    # 4. The restart finds training done: it trains no step, evaluates and exports.
    last = train("resumed")
    assert last.finish(timeout=300) == 0, last.output[-3000:]
    assert "Training already finished" in last.output
    assert " (0 steps)" in last.output
    assert f"({TOTAL_STEPS} steps)" in reference.output

    for name in ("reference", "resumed"):
        reader = tf.train.load_checkpoint(str(tmp_path / f"{name}_checkpoints"))
        assert int(reader.get_tensor(ITERATIONS)) == TOTAL_STEPS, name
    expected = exported_model(tmp_path / "reference_export")
    resumed = exported_model(tmp_path / "resumed_export")
    assert int(resumed.optimizer.iterations.numpy()) == TOTAL_STEPS
    assert len(resumed.weights) == len(expected.weights) > 10
    for got, want in zip(resumed.get_weights(), expected.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    assert (tmp_path / "resumed_export" / "1" / "saved_model.pb").exists()
