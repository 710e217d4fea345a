"""Fixtures shared by the test packages."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TINY_COUNTS = {"train": 48, "val": 8, "test": 8}
# Folders whose files share session fixtures that are costly to build (tests/serving: an
# export of every model): `make test` (pytest-xdist, one file per worker) sends each such
# folder to one worker as a whole, so those fixtures are built once, not once per worker.
SHARED_FIXTURE_FOLDERS = ("tests/serving/",)


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadFileScheduling

    class SharedFixtureScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            folder = next((f for f in SHARED_FIXTURE_FOLDERS if nodeid.startswith(f)), None)
            return folder or super()._split_scope(nodeid)

    return SharedFixtureScheduling(config, log)


@pytest.fixture(scope="session")
def tiny_shapes_world(tmp_path_factory):
    """A small shapes world (48/8/8 images), generated once per test session."""
    from datasets.shapes import ensure_shapes_world

    return ensure_shapes_world(tmp_path_factory.mktemp("shapes"), counts=TINY_COUNTS)


@pytest.fixture
def mixed_bfloat16():
    """Runs a test under the mixed_bfloat16 dtype policy, then restores the previous one."""
    import keras  # here, so that TF_CPP_MIN_LOG_LEVEL above is set before TensorFlow loads

    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


# The longest files (training subprocesses, train.py runs) start first, so that short
# files fill both xdist workers at the end instead of one worker finishing alone.
LONGEST_FIRST = (
    "tests/training/",
    "tests/test_train_tokenizers.py",
    "tests/test_hub_round_trip.py",
)


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))
