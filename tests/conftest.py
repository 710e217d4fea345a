"""Fixtures shared by the test packages."""

import os

import pytest

from training.onednn import prefer_onednn

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
prefer_onednn()  # the kernels train.py runs, here and in the processes tests start
# One intra-op thread per process, here and in the processes tests start: `make test` runs
# three workers on two cores, and each op's thread pool then only fought the others for
# them (the same files took 12% longer with TensorFlow's default of one thread per core).
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

TINY_COUNTS = {"train": 48, "val": 8, "test": 8}
# Folders whose files share session fixtures that are costly to build (tests/serving: an
# export of every model): `make test` (pytest-xdist, one file per worker) sends each such
# folder to one worker as a whole, so those fixtures are built once, not once per worker.
SHARED_FIXTURE_FOLDERS = ("tests/serving/",)


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadFileScheduling

    # xdist otherwise hands out the files with the most tests first, not LONGEST_FIRST's.
    config.option.loadscopereorder = False

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


# The longest files (training subprocesses, train.py runs; 40 to 150 s each in a full
# run), longest first, so that the short files fill every xdist worker at the end
# instead of one worker finishing a long file alone.
LONGEST_FIRST = (
    "tests/models/test_registry_models.py",
    "tests/test_hub_round_trip.py",
    "tests/training/test_mixed_precision.py",
    "tests/training/test_every_model_mirrored.py",
    "tests/models/test_hub_encoders.py",
    "tests/models/test_fusion_learning.py",
    "tests/test_train_tokenizers.py",
    "tests/serving/",
    "tests/test_train_cli.py",
    "tests/training/test_loop.py",
    "tests/models/test_jax_backend.py",
    "tests/training/test_train_multi_worker_kill.py",
    "tests/training/test_train_kill_resume.py",
    "tests/test_train_streamed_data.py",
    "tests/publishing/",
    "tests/training/",
)


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        starts = [item.nodeid.startswith(prefix) for prefix in LONGEST_FIRST]
        return starts.index(True) if any(starts) else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each file keeps its own order
