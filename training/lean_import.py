"""Import TensorFlow without the two optional packages it loads at start-up and never uses here.

When they are installed, TensorFlow 2.21 imports jax (`tensorflow/lite/python/util.py`,
for TFLite's converter of JAX functions), and Keras 3.15 imports jax
(`keras/src/callbacks/orbax_checkpoint.py`, to patch a JAX monitoring function) and
`matplotlib.pyplot` (`keras/src/visualization/plot_image_gallery.py`, for one plotting
helper), each inside a `try: ... except ImportError`. jax comes with the test
requirements (0.5 s of every process that imports TensorFlow: train.py, and the dozens
of processes the test suite starts), matplotlib with the benchmarks' (0.7 s more).

`import_tensorflow()` imports TensorFlow while a finder answers those imports, from
those modules only, with ImportError. It then gives the modules lazy stand-ins for the
names they would have bound, so `tf.lite`'s JAX converter and `keras.visualization`
still work: the real package loads on first use. (The Orbax callback's patch is for
JAX versions older than the pinned one, and only matters under the JAX backend, where
TensorFlow is not imported through here.) Any other import of jax or matplotlib is
untouched.
"""

import importlib
import importlib.abc
import importlib.util
import sys

from training.onednn import prefer_onednn

# (package, the module whose optional import of it is skipped, the names holding what
# that import bound: (module, name), or none where nothing outside the import uses it).
SKIPPED = (
    ("jax", "tensorflow.lite.python.util", [("tensorflow.lite.python.util", "_jit")]),
    # lite.py copies util's `_jit` (`from ... import _jit`): nothing to refuse, one more holder.
    ("jax", "tensorflow.lite.python.lite", [("tensorflow.lite.python.lite", "_jit")]),
    ("jax", "keras.src.callbacks.orbax_checkpoint", []),
    (
        "matplotlib",
        "keras.src.visualization.plot_image_gallery",
        [("keras.src.visualization.plot_image_gallery", "plt")],
    ),
)


class _SkipOptionalImports(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        package = name.partition(".")[0]
        if any(
            package == skipped and _importing_module() == importer
            for skipped, importer, _ in SKIPPED
        ):
            raise ModuleNotFoundError(f"{name}: skipped while TensorFlow imports", name=name)
        return None


def _importing_module() -> str:
    """The module whose code runs the import being resolved (outside importlib)."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if not name.startswith("importlib") and name != __name__:
            return name
        frame = frame.f_back
    return ""


class _LazyModule:
    """Stands for a module; imports it on the first attribute read."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute):
        return getattr(importlib.import_module(self._name), attribute)


def _lazy_jit(*arguments, **keywords):
    from jax import jit

    return jit(*arguments, **keywords)


LAZY = {"jax": _lazy_jit, "matplotlib": _LazyModule("matplotlib.pyplot")}


def import_tensorflow():
    """`import tensorflow`, skipping the unused optional imports, with oneDNN's kernels
    asked for (`training.onednn`); returns the module."""
    if "tensorflow" in sys.modules:  # waits for an import another thread has begun
        return importlib.import_module("tensorflow")
    prefer_onednn()
    finder = _SkipOptionalImports()
    sys.meta_path.insert(0, finder)
    try:
        import tensorflow
    finally:
        sys.meta_path.remove(finder)
    for package, _, holders in SKIPPED:
        if importlib.util.find_spec(package) is None:
            continue  # not installed: None, as TensorFlow itself would have left it
        for module_name, bound in holders:
            module = sys.modules.get(module_name)
            if module is not None and getattr(module, bound, None) is None:
                setattr(module, bound, LAZY[package])
    return tensorflow
