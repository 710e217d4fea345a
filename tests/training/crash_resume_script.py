"""crash_resume.crash_and_resume in a process of its own, under op determinism when asked;
prints its result as JSON. Usage: crash_resume_script.py FOLDER skip|iterator_state."""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from training.lean_import import import_tensorflow  # noqa: E402

tf = import_tensorflow()

from tests.training.crash_resume import crash_and_resume  # noqa: E402

if __name__ == "__main__":
    folder, mode = sys.argv[1], sys.argv[2]
    if mode == "iterator_state":
        # A restored iterator repeats the uninterrupted run's batches only under op
        # determinism (tensorflow/tensorflow#56385); without it, one full suite in several
        # resumed with weights up to 0.04 away.
        tf.config.experimental.enable_op_determinism()
    print(json.dumps(crash_and_resume(Path(folder), checkpoint_iterator=mode == "iterator_state")))
