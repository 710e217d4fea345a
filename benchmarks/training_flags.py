"""The flags every training-speed benchmark takes (frameworks.py, jax_speed.py)."""

import argparse
from pathlib import Path


def add_training_flags(parser: argparse.ArgumentParser, models: tuple[str, ...]) -> None:
    """--models, --rounds, --steps, --batch-size, --batches and --json."""
    parser.add_argument("--models", nargs="+", default=list(models), choices=models)
    parser.add_argument("--rounds", type=int, default=3, help="alternations (>= 3 for a report)")
    parser.add_argument("--steps", type=int, default=20, help="training steps per block")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=4, help="distinct batches held in memory")
    parser.add_argument("--json", type=Path, help="also write the rows here")
