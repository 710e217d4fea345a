"""import_tensorflow(): TensorFlow without jax and matplotlib.pyplot, which still work later,
and with oneDNN's kernels unless the environment turns them off."""

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from training.onednn import X86

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import importlib, importlib.util, json, os, sys
import train  # train.py imports TensorFlow through import_tensorflow() first
from training.lean_import import import_tensorflow
from training.onednn import onednn_enabled

tf = sys.modules["tensorflow"]
result = {
    "loaded_at_import": [name for name in ("jax", "matplotlib.pyplot") if name in sys.modules],
    "same_module": import_tensorflow() is tf,
    "onednn": [os.environ.get("TF_ENABLE_ONEDNN_OPTS"), onednn_enabled()],
}
lite = importlib.import_module("tensorflow.lite.python.lite")
gallery = importlib.import_module("keras.src.visualization.plot_image_gallery")
# Installed: the real jax.jit and matplotlib.pyplot, imported now. Not installed: None,
# as TensorFlow and Keras leave them.
if importlib.util.find_spec("jax") is None:
    result["jit"] = lite._jit is None
else:
    result["jit"] = float(lite._jit(lambda x: 2 * x)(3.0)) == 6.0
    import jax.numpy  # the finder is gone: jax imports as usual

    result["jit"] &= jax.numpy.ones(2).tolist() == [1.0, 1.0]
if importlib.util.find_spec("matplotlib") is None:
    result["pyplot"] = gallery.plt is None
else:
    result["pyplot"] = type(gallery.plt.figure()).__name__ == "Figure"
print(json.dumps(result))
"""


def test_tensorflow_imports_without_jax_and_pyplot_which_load_on_first_use():
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result == {
        "loaded_at_import": [],
        "same_module": True,
        "jit": True,
        "pyplot": True,
        # TensorFlow's own default: on only with AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX.
        "onednn": ["1", True],
    }


def test_a_user_s_tf_enable_onednn_opts_0_stays():
    script = (
        "from training.lean_import import import_tensorflow; import_tensorflow(); "
        "import os; from training.onednn import onednn_enabled; "
        "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], onednn_enabled())"
    )
    environment = {"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**environment, "TF_ENABLE_ONEDNN_OPTS": "0"},
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.split() == ["0", "False"]


# Stops the process when `tensorflow` is first imported, printing the variable as it was
# then, so nothing is loaded.
FIRST_TENSORFLOW_IMPORT = """
import importlib, importlib.abc, os, sys

class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name == "keras":
            print(name, os.environ.get("TF_ENABLE_ONEDNN_OPTS"), flush=True)
            os._exit(0)

sys.meta_path.insert(0, Watch())
sys.argv = [sys.argv[1]]
importlib.import_module(sys.argv[0])
print("no import", flush=True)
"""


@pytest.mark.skipif(platform.machine() not in X86, reason="oneDNN is asked for on x86 only")
@pytest.mark.parametrize(
    "module",
    [
        "train",
        "convert_dataset",
        "benchmarks.frameworks",
        "benchmarks.input_pipeline",
        "benchmarks.serving",
        "benchmarks.run",
    ],
)
def test_every_entry_point_asks_for_onednn_before_tensorflow_or_keras_loads(module):
    completed = subprocess.run(
        [sys.executable, "-c", FIRST_TENSORFLOW_IMPORT, module],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.split() == ["tensorflow", "1"], completed.stdout
