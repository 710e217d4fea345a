"""Alternating rounds with the machine's load recorded per block, shared by the benchmarks.

A benchmark compares subjects (ours and PyTorch's training, a signature and the model
it serves, ...) by measuring each once per round, so that a slow spell of the machine
falls on every subject alike. The first round runs them in the given order, each later
one in a shuffled order (seeded, so a run can be repeated), never starting with the
subject that ended the round before: no subject always runs first, or always after
the same one (a subject's threads can keep spinning for a while after its block
ends, and the block before can leave caches and allocators warm). Around each
block it also reads how much CPU the other processes used (`/proc/stat` minus this
process's own CPU time), so a block taken while the machine was busy can be recognised
and left out of the medians.
"""

import os
import random
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# A block is busy when other processes used more than this share of the machine's
# CPUs while it ran (on 2 cores: a third of a core).
BUSY_SHARE = 0.15


def _busy_cpu_seconds() -> float | None:
    """CPU seconds every process has spent (all CPUs, since boot), or None off Linux."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


@dataclass
class Block:
    """One measurement of one subject: what `measure` returned (a rate; for the serving
    benchmark the seconds of each call), how long it took, and how busy the other
    processes kept the machine meanwhile (None where that cannot be read)."""

    subject: str
    round: int
    value: float | list[float]
    seconds: float
    others_cpu_share: float | None

    def busy(self, threshold: float = BUSY_SHARE) -> bool:
        return self.others_cpu_share is not None and self.others_cpu_share > threshold


def measured(measure: Callable[[], float]) -> tuple[float, float, float | None]:
    """(measure(), wall seconds, the other processes' share of the CPUs meanwhile)."""
    cpus = os.cpu_count() or 1
    busy_before, own_before = _busy_cpu_seconds(), _own_cpu_seconds()
    started = time.perf_counter()
    value = measure()
    seconds = time.perf_counter() - started
    busy_after, own_after = _busy_cpu_seconds(), _own_cpu_seconds()
    share = None
    if busy_before is not None and busy_after is not None and seconds > 0:
        others = (busy_after - busy_before) - (own_after - own_before)
        share = min(1.0, max(0.0, others / (seconds * cpus)))
    return value, seconds, share


def alternate(
    measure: Callable[[object], float],
    subjects: Mapping[str, object],
    rounds: int,
    log: Callable[[str], None] | None = None,
) -> list[Block]:
    """`measure(subject)` for each subject once per round, `rounds` times, in the orders
    of `round_orders`; `log` (if given) hears one line per block."""
    blocks = []
    for index, order in enumerate(round_orders(list(subjects), rounds)):
        for name in order:
            subject = subjects[name]
            value, seconds, share = measured(lambda subject=subject: measure(subject))
            blocks.append(Block(name, index, value, seconds, share))
            if log is not None:
                load = "unknown" if share is None else f"{share:.0%}"
                log(
                    f"round {index + 1}/{rounds} {name}: {value:.1f} in {seconds:.1f} s, "
                    f"others {load} of the CPUs"
                )
    return blocks


def round_orders(names: list[str], rounds: int, seed: int = 0) -> list[list[str]]:
    """The subjects' order in each round: as given first, then seeded shuffles that never
    start with the subject that ended the previous round."""
    shuffler = random.Random(seed)
    orders = [list(names)][:rounds]
    while len(orders) < rounds:
        order = list(names)
        shuffler.shuffle(order)
        if len(order) < 2 or order[0] != orders[-1][-1]:
            orders.append(order)
    return orders


def summary(blocks: list[Block], subject: str, threshold: float = BUSY_SHARE) -> dict:
    """Median and range of `subject`'s values over its quiet blocks.

    Busy blocks are left out; when every block was busy, all are kept and the summary
    says so (`all_busy`), so a figure from a loaded machine is never passed off as quiet.
    """
    own = [block for block in blocks if block.subject == subject]
    if not own:
        raise ValueError(f"no blocks measured subject {subject!r}")
    quiet = [block for block in own if not block.busy(threshold)]
    kept = quiet or own
    values = [block.value for block in kept]
    shares = [block.others_cpu_share for block in own if block.others_cpu_share is not None]
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "blocks": len(own),
        "blocks_kept": len(kept),
        "all_busy": not quiet,
        "samples": [round(block.value, 3) for block in own],
        "others_cpu_share": [
            None if s is None else round(s, 3) for s in (block.others_cpu_share for block in own)
        ],
        "others_cpu_share_max": max(shares) if shares else None,
        "busy_threshold": threshold,
    }


def round_ratios(
    blocks: list[Block], numerator: str, denominator: str, threshold: float = BUSY_SHARE
) -> list[float]:
    """`numerator`'s value over `denominator`'s in each round where both blocks were
    quiet, in round order. The two ran minutes apart at most, so the spread of these
    ratios shows how far a ratio of medians can be trusted on this machine."""
    by_round = {(block.subject, block.round): block for block in blocks}
    ratios = []
    for index in sorted({block.round for block in blocks}):
        top, bottom = by_round.get((numerator, index)), by_round.get((denominator, index))
        if top is None or bottom is None or top.busy(threshold) or bottom.busy(threshold):
            continue
        ratios.append(top.value / bottom.value)
    return ratios
