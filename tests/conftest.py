"""Fixtures shared by the test packages."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TINY_COUNTS = {"train": 48, "val": 8, "test": 8}


@pytest.fixture(scope="session")
def tiny_shapes_world(tmp_path_factory):
    """A small shapes world (48/8/8 images), generated once per test session."""
    from datasets.shapes import ensure_shapes_world

    return ensure_shapes_world(tmp_path_factory.mktemp("shapes"), counts=TINY_COUNTS)
