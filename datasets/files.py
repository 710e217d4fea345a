"""Checks on the files a metadata file points at."""

import os
from collections.abc import Sequence
from pathlib import Path


def check_image_files(image_paths: Sequence[str], metadata_path: str | Path) -> None:
    """Raises ValueError naming the first image file that does not exist."""
    for image_path in image_paths:
        if not os.path.isfile(image_path):
            raise ValueError(f"{metadata_path}: image file not found: {image_path}")
