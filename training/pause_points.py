"""A test hook: stop a training process at a named point so that a test can SIGKILL it there.

Kill-and-resume tests need to kill a run at a known step, inside a checkpoint save, or
after training but before the export, not at a moment picked by a timer. Set
`MMZOO_TEST_PAUSE` to one of these and the process prints a marker line and sleeps until
it is killed:

    step:N     after global step N's batch, before any checkpoint of step N
               (training.loop.Trainer)
    save:N     inside checkpoint save number N on the chief, once its files are
               written and before the `checkpoint` file points at them
               (training.checkpoints.TrainingCheckpoint)
    trained    after training ended and its last checkpoint was written, before
               Trainer.fit returns (so before train.py evaluates and exports)

The marker is "mmzoo: paused at step N", "mmzoo: paused in save N" or "mmzoo: paused
after training", on stdout. Unset (the normal case) the hook does nothing.
"""

import os
import sys
import time

ENVIRONMENT_VARIABLE = "MMZOO_TEST_PAUSE"


def requested(point: str, number: int | None = None) -> bool:
    """Whether MMZOO_TEST_PAUSE asks to pause at `point` ("step", "save", "trained")."""
    wanted = os.environ.get(ENVIRONMENT_VARIABLE, "")
    return wanted == (point if number is None else f"{point}:{number}")


def pause_if_requested(point: str, number: int | None = None, marker: str = "") -> None:
    """Prints `marker` and sleeps until killed when MMZOO_TEST_PAUSE names this point."""
    if not requested(point, number):
        return
    print(f"\nmmzoo: paused {marker}", flush=True)
    sys.stderr.flush()
    while True:
        time.sleep(60)
