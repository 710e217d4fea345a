"""Which ops an export needs beyond core TensorFlow, and a load that says so.

A SavedModel that uses tensorflow-text ops (a `--tokenizer wordpiece` export)
fails to load where they are not registered, with a bare "Op type not
registered" (shared/UPSTREAM.md). The model card lists those ops
(`non_core_ops`), and `load_saved_model` checks them before loading and names the
fix. This module imports nothing but TensorFlow, like the exports themselves.
"""

from pathlib import Path

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

# What an export that needs them asks for; train.py imports tensorflow_text before
# loading or exporting one.
TENSORFLOW_TEXT = "tensorflow-text"


class MissingOpsError(RuntimeError):
    """A SavedModel needs ops this process has not registered."""


def graph_def_op_types(graph_def) -> set[str]:
    """Op types of a GraphDef's nodes and of every function in its library."""
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types.update(node.op for node in function.node_def)
    return types


def function_op_types(functions) -> set[str]:
    """Op types the tf.functions' traced graphs use, nested functions included."""
    types = set()
    for function in functions:
        concrete = function.get_concrete_function()
        types |= graph_def_op_types(concrete.graph.as_graph_def())
    return types


def saved_model_op_types(saved_model_dir: str | Path) -> set[str]:
    """Op types of a SavedModel on disk, read from saved_model.pb without loading it."""
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    types = set()
    for meta_graph in proto.meta_graphs:
        types |= graph_def_op_types(meta_graph.graph_def)
    return types


def non_core_ops(op_types: set[str]) -> list[str]:
    """The op types that core TensorFlow does not define (`tf.raw_ops` lists every core op)."""
    return sorted(op for op in op_types if not hasattr(tf.raw_ops, op))


def unregistered_ops(op_types: set[str]) -> list[str]:
    """The op types this process cannot run: neither core nor loaded from a library."""
    return sorted(op for op in op_types if op_def_registry.get(op) is None)


def load_saved_model(saved_model_dir: str | Path):
    """`tf.saved_model.load`, after checking that every op the export needs is registered.

    Raises:
        MissingOpsError: naming the export, the ops, and what to import or deploy.
    """
    missing = unregistered_ops(saved_model_op_types(saved_model_dir))
    if missing:
        raise MissingOpsError(
            f"The SavedModel {saved_model_dir} needs ops that are not in core TensorFlow and "
            f"not registered in this process: {missing}. They come from {TENSORFLOW_TEXT} "
            "(a --tokenizer wordpiece export): run `import tensorflow_text` before loading it "
            f"(pip install {TENSORFLOW_TEXT} at the version matching TensorFlow), or serve it "
            "with a TF Serving build that links TF Text ops. Its model card "
            "(assets.extra/model_card.json) lists them under non_core_ops."
        )
    return tf.saved_model.load(str(saved_model_dir))
