"""Whether a pipeline keeps its decoded images in memory after the first epoch.

`--cache auto` (the default) caches when the decoded model inputs of a split take
at most a quarter of the memory available now, `memory` always caches, `off` never
does. Caching holds float32 [S, S, 3] per row, exactly what the model consumes, so
later epochs skip reading, decoding and resizing (and leave the cores to training).
"""

import os

CACHE_CHOICES = ("auto", "memory", "off")
AUTO_MEMORY_FRACTION = 0.25
# Per-row overhead besides the image: the text, targets and tf.data's bookkeeping.
ROW_OVERHEAD_BYTES = 512


def decoded_bytes(rows: int, image_size: int) -> int:
    """Bytes that `rows` decoded float32 images of `image_size` take, with their texts."""
    return rows * (image_size * image_size * 3 * 4 + ROW_OVERHEAD_BYTES)


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux), else the physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def should_cache(policy: str, rows: int, image_size: int) -> bool:
    """Applies a `--cache` policy to a split of `rows` rows.

    Raises:
        ValueError: naming the policy when it is not one of CACHE_CHOICES.
    """
    if policy not in CACHE_CHOICES:
        raise ValueError(f"--cache must be one of {CACHE_CHOICES}, got {policy!r}.")
    if policy == "auto":
        budget = AUTO_MEMORY_FRACTION * available_memory_bytes()
        return decoded_bytes(rows, image_size) <= budget
    return policy == "memory"
