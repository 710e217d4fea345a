"""What the kill-and-resume tests read of a run's checkpoints: where the saves fall, and
which checkpoint the `checkpoint` pointer file names."""

import re


def save_steps(epochs: int, steps_per_epoch: int, checkpoint_every: int) -> list[int]:
    """The global step of each save of a run, in order (save number i is at index i - 1):
    every `checkpoint_every` global steps, then at each epoch end."""
    steps = []
    for step in range(1, epochs * steps_per_epoch + 1):
        if step % checkpoint_every == 0:
            steps.append(step)
        if step % steps_per_epoch == 0:
            steps.append(step)
    return steps


def recorded_checkpoint(checkpoint_dir) -> int:
    """The number of the checkpoint that the `checkpoint` pointer file names."""
    text = (checkpoint_dir / "checkpoint").read_text()
    return int(re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', text, re.M).group(1))
