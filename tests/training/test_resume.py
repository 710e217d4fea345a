"""Exact resume: a run SIGKILLed at several points, restarted each time, ends as an
uninterrupted run does (same optimizer steps, bit-identical weights and history).

The kills land on markers the script prints and then waits at (tests/training/
resume_script.py), never on timing: twice in the same epoch, once inside a checkpoint
save, once after training but before the export. The steps are drawn at random from a
fixed seed. Weights are compared with np.array_equal: the script enables op
determinism, restores float32 values bit for bit, and reads the same batches.
"""

import json
import random
import re

import numpy as np
import pytest

from tests.training.checkpoint_files import recorded_checkpoint, save_steps
from tests.training.processes import Script
from tests.training.resume_script import CHECKPOINT_EVERY, EPOCHS, STEPS_PER_EPOCH

TOTAL_STEPS = EPOCHS * STEPS_PER_EPOCH


def trained_steps(script: Script) -> list[int]:
    return [int(line.split()[1]) for line in script.lines if re.fullmatch(r"step \d+", line)]


def run_until(marker: str, checkpoint_dir, output, **env) -> Script:
    script = Script("resume_script.py", checkpoint_dir, output, env=env)
    script.wait_for(marker)
    script.kill()
    return script


def load(path) -> dict:
    saved = np.load(path)
    weights = [saved[f"arr_{index}"] for index in range(len(saved.files) - 2)]
    return {
        "weights": weights,
        "iterations": int(saved["iterations"]),
        "history": json.loads(str(saved["history"])),
    }


@pytest.mark.slow
def test_killed_and_restarted_run_ends_as_the_uninterrupted_one(tmp_path):
    rng = random.Random(20240607)
    saves = save_steps(EPOCHS, STEPS_PER_EPOCH, CHECKPOINT_EVERY)
    reference = Script("resume_script.py", tmp_path / "reference_checkpoints", tmp_path / "ref.npz")
    assert reference.finish() == 0, reference.output

    checkpoints, output = tmp_path / "checkpoints", tmp_path / "out.npz"
    # 1. Killed early in the second epoch, before the checkpoint of that step.
    first_kill = rng.randint(STEPS_PER_EPOCH + 1, STEPS_PER_EPOCH + 2 * CHECKPOINT_EVERY - 2)
    run_until(f"paused at step {first_kill}", checkpoints, output, PAUSE_AT_STEP=str(first_kill))
    saved = sum(step < first_kill for step in saves)
    assert recorded_checkpoint(checkpoints) == saved

    # 2. Resumed at the next step; killed again in the same epoch, after this run's own
    # next checkpoint.
    resumed_at = saves[saved - 1]
    second_kill = rng.randint(saves[saved] + 1, 2 * STEPS_PER_EPOCH)
    second = run_until(
        f"paused at step {second_kill}", checkpoints, output, PAUSE_AT_STEP=str(second_kill)
    )
    assert f"ckpt-{saved}: epoch 2, {resumed_at - STEPS_PER_EPOCH} batch(es)" in second.output
    assert trained_steps(second) == list(range(resumed_at + 1, second_kill + 1))
    saved = sum(step < second_kill for step in saves)
    assert saves[saved - 1] > resumed_at and saves[saved - 1] < 2 * STEPS_PER_EPOCH

    # 3. Resumed from the second run's checkpoint, in the same epoch again; killed inside
    # the next save, after its files were written, before they count.
    in_save = saved + 1
    third = run_until(f"paused in save {in_save}", checkpoints, output, PAUSE_IN_SAVE=str(in_save))
    assert f"Resuming from {checkpoints}/ckpt-{saved}: epoch 2," in third.output
    assert (checkpoints / f"ckpt-{in_save}.index").exists()
    assert recorded_checkpoint(checkpoints) == saved

    # 4. Resumed from the save before; killed after training, before the export.
    fourth = run_until("paused before export", checkpoints, output, PAUSE_BEFORE_EXPORT="1")
    assert f"Resuming from {checkpoints}/ckpt-{saved}:" in fourth.output
    assert trained_steps(fourth) == list(range(saves[saved - 1] + 1, TOTAL_STEPS + 1))
    assert recorded_checkpoint(checkpoints) == len(saves)

    # 5. The restart finds training done: no step is trained again, the export runs.
    last = Script("resume_script.py", checkpoints, output)
    assert last.finish() == 0, last.output
    assert "Training already finished" in last.output
    assert trained_steps(last) == []
    assert "exported" in last.lines

    expected, resumed = load(tmp_path / "ref.npz"), load(output)
    assert resumed["iterations"] == expected["iterations"] == TOTAL_STEPS
    assert len(resumed["weights"]) == len(expected["weights"]) == 4
    for got, want in zip(resumed["weights"], expected["weights"], strict=True):
        np.testing.assert_array_equal(got, want)
    assert resumed["history"] == expected["history"]
    assert len(expected["history"]["val_loss"]) == EPOCHS
