"""Runs code in a new KERAS_BACKEND=jax process with TensorFlow unimportable, as on the GPU
machine the JAX benchmark is for; shared by the JAX backend and benchmark tests."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# JAX on the CPU, XLA's optimisation turned down: these runs check that steps compile
# and train, not how fast.
JAX_CPU_ENVIRONMENT = {
    "KERAS_BACKEND": "jax",
    "JAX_PLATFORMS": "cpu",
    "XLA_FLAGS": "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true",
}

# Put before the code: TensorFlow's packages cannot be imported (ABSENT names them).
WITHOUT_TENSORFLOW = """import sys
ABSENT = ("tensorflow", "tensorflow_hub", "tensorflow_text", "tensorflow_datasets", "tf_keras")
sys.modules.update(dict.fromkeys(ABSENT))
"""


def run_without_tensorflow(code: str, *args: str) -> subprocess.CompletedProcess:
    """`code` with its `args` in the repository root; asserts that it succeeded."""
    completed = subprocess.run(
        [sys.executable, "-c", WITHOUT_TENSORFLOW + code, *args],
        cwd=ROOT,
        env={**os.environ, **JAX_CPU_ENVIRONMENT, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return completed
