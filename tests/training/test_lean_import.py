"""import_tensorflow(): TensorFlow without jax and matplotlib.pyplot, which still work later."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import importlib, json, sys
import train  # train.py imports TensorFlow through import_tensorflow() first
from training.lean_import import import_tensorflow

tf = sys.modules["tensorflow"]
skipped = [name for name in ("jax", "matplotlib.pyplot") if name in sys.modules]
lite = importlib.import_module("tensorflow.lite.python.lite")
gallery = importlib.import_module("keras.src.visualization.plot_image_gallery")
doubled = lite._jit(lambda x: 2 * x)(3.0)  # the real jax.jit, imported now
figure = gallery.plt.figure()  # the real matplotlib.pyplot
import jax.numpy  # the finder is gone: jax imports as usual
print(json.dumps({
    "loaded_at_import": skipped,
    "doubled": float(doubled),
    "figure": type(figure).__name__,
    "jax_numpy": jax.numpy.ones(2).tolist(),
    "same_module": import_tensorflow() is tf,
}))
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
        "doubled": 6.0,
        "figure": "Figure",
        "jax_numpy": [1.0, 1.0],
        "same_module": True,
    }
