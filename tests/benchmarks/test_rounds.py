"""Alternation and busy-block detection, shared by the benchmarks."""

import itertools

import pytest

from benchmarks import rounds
from benchmarks.rounds import Block, alternate, summary


def test_each_round_measures_every_subject_once_and_each_block_records_the_load():
    order = []
    subjects = {"a": "a", "b": "b", "c": "c"}
    blocks = alternate(lambda subject: order.append(subject) or len(order), subjects, 6)
    assert order == [name for names in rounds.round_orders(list(subjects), 6) for name in names]
    assert [(block.subject, block.round) for block in blocks][:3] == [
        ("a", 0),
        ("b", 0),
        ("c", 0),
    ]
    for block in blocks:
        assert block.seconds >= 0
        assert block.others_cpu_share is None or 0.0 <= block.others_cpu_share <= 1.0


def test_later_rounds_are_shuffled_without_a_subject_twice_in_a_row():
    names = ["ours", "fit", "torch", "torch_cl", "peak"]
    orders = rounds.round_orders(names, 40)
    assert orders == rounds.round_orders(names, 40)  # seeded: a run can be repeated
    assert orders[0] == names and all(sorted(order) == sorted(names) for order in orders)
    sequence = [name for order in orders for name in order]
    assert all(first != second for first, second in itertools.pairwise(sequence))
    # Every subject opens some round, and follows every other subject somewhere.
    assert {order[0] for order in orders} == set(names)
    followed = {(first, second) for first, second in itertools.pairwise(sequence)}
    assert all((a, b) in followed for a in names for b in names if a != b)
    assert rounds.round_orders(["only"], 3) == [["only"]] * 3


def test_busy_blocks_are_left_out_of_the_median():
    blocks = [
        Block("ours", 0, 10.0, 1.0, 0.0),
        Block("ours", 1, 1.0, 1.0, 0.9),  # taken while others used 90% of the CPUs
        Block("ours", 2, 12.0, 1.0, 0.05),
        Block("theirs", 0, 5.0, 1.0, None),  # load unknown: kept
    ]
    ours = summary(blocks, "ours")
    assert ours["median"] == 11.0 and (ours["min"], ours["max"]) == (10.0, 12.0)
    assert (ours["blocks"], ours["blocks_kept"], ours["all_busy"]) == (3, 2, False)
    assert ours["samples"] == [10.0, 1.0, 12.0] and ours["others_cpu_share_max"] == 0.9
    assert summary(blocks, "theirs")["blocks_kept"] == 1


def test_when_every_block_was_busy_all_are_kept_and_flagged():
    blocks = [Block("ours", index, value, 1.0, 0.5) for index, value in enumerate((3.0, 1.0, 2.0))]
    figure = summary(blocks, "ours")
    assert figure["all_busy"] and figure["blocks_kept"] == 3 and figure["median"] == 2.0
    assert not summary(blocks, "ours", threshold=0.6)["all_busy"]
    with pytest.raises(ValueError, match="nobody"):
        summary(blocks, "nobody")


def test_the_load_of_a_block_counts_other_processes_only():
    # Busy-waiting here for 0.2 s is this process's own CPU, not another's.
    def spin():
        import time

        end = time.perf_counter() + 0.2
        while time.perf_counter() < end:
            pass
        return 1.0

    value, seconds, share = rounds.measured(spin)
    assert value == 1.0 and seconds >= 0.2
    assert share is None or share < 1.0


def test_round_ratios_pair_each_round_and_skip_busy_ones():
    blocks = [
        Block("ours", 0, 10.0, 1.0, 0.0),
        Block("theirs", 0, 8.0, 1.0, 0.0),
        Block("theirs", 1, 5.0, 1.0, 0.0),
        Block("ours", 1, 6.0, 1.0, 0.5),  # busy: round 1 is left out
        Block("ours", 2, 9.0, 1.0, None),
        Block("theirs", 2, 10.0, 1.0, 0.01),
        Block("ours", 3, 7.0, 1.0, 0.0),  # no partner in round 3
    ]
    assert rounds.round_ratios(blocks, "ours", "theirs") == [1.25, 0.9]
    assert rounds.round_ratios(blocks, "ours", "theirs", threshold=0.6) == [1.25, 1.2, 0.9]
