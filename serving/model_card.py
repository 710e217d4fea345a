"""The model card of an export: assets.extra/model_card.json.

What was trained on what, how well it does against its baseline, how to call it
(every signature's inputs and outputs) and what built it, in one JSON file
beside the SavedModel, which TF Serving ignores.
"""

from collections.abc import Mapping
from datetime import UTC, datetime

import keras
import tensorflow as tf

from serving.custom_ops import function_op_types, non_core_ops
from serving.warmup import signature_inputs

SUMMARY_FIELDS = (
    "model",
    "task",
    "dataset",
    "test_split",
    "vocabulary_size",
    "metrics",
    "baseline",
    "baseline_name",
    "settings",
    "training_seconds",
    "git_commit",
)


def tensor_card(dtype: tf.DType, shape: tf.TensorShape) -> dict:
    """{"dtype": "float32", "shape": [null, 128]} (null: any size; shape null: any rank)."""
    return {"dtype": dtype.name, "shape": None if shape.rank is None else shape.as_list()}


def describe_signatures(module: tf.Module) -> dict[str, dict]:
    """Signature name -> {"inputs": {key: tensor card}, "outputs": {key: tensor card}}.

    Read from the module's `signatures()` (tf.functions with an input_signature),
    with the keys a PredictRequest uses and the outputs the traced function returns.
    """
    described = {}
    for name, function in module.signatures().items():
        outputs = function.get_concrete_function().structured_outputs
        described[name] = {
            "inputs": {
                key: tensor_card(spec.dtype, spec.shape)
                for key, spec in signature_inputs(function).items()
            },
            "outputs": {
                key: tensor_card(tensor.dtype, tensor.shape) for key, tensor in outputs.items()
            },
        }
    return described


def as_floats(scores: Mapping[str, object]) -> dict[str, float]:
    """Metric name -> score as a Python float (evaluation may give numpy scalars)."""
    return {name: float(value) for name, value in scores.items()}


def build_model_card(
    summary: Mapping[str, object], module: tf.Module, exported_at: datetime | None = None
) -> dict:
    """The model card of a train.py run, JSON-able.

    Args:
        summary: train.py's run summary; it needs the SUMMARY_FIELDS (`settings` is
            every flag and the epochs, batch size and learning rate used).
        module: the serving module being exported.
        exported_at: when (default: now); written in UTC, ISO 8601.

    Returns:
        The SUMMARY_FIELDS (`settings` as "training_settings", metric values as
        floats), "exported_at", "tensorflow_version", "keras_version" and
        "signatures" (`describe_signatures`), "tokenizer" (the summary's, default
        "word") and "non_core_ops": every op the signatures need that core TensorFlow
        does not define (tensorflow-text's tokenizer for "wordpiece"; [] for "word").

    Raises:
        ValueError: if the summary lacks a field, naming it.
    """
    missing = [field for field in SUMMARY_FIELDS if field not in summary]
    if missing:
        raise ValueError(f"The run summary has no {missing} for the model card.")
    exported_at = (exported_at or datetime.now(UTC)).astimezone(UTC)
    return {
        "model": summary["model"],
        "task": summary["task"],
        "dataset": summary["dataset"],
        "test_split": summary["test_split"],
        "vocabulary_size": int(summary["vocabulary_size"]),
        "tokenizer": summary.get("tokenizer", "word"),
        "metrics": as_floats(summary["metrics"]),
        "baseline": None if summary["baseline"] is None else as_floats(summary["baseline"]),
        "baseline_name": summary["baseline_name"],
        "training_settings": dict(summary["settings"]),
        "training_seconds": summary["training_seconds"],
        "git_commit": summary["git_commit"],
        "exported_at": exported_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "signatures": describe_signatures(module),
        "non_core_ops": non_core_ops(function_op_types(module.signatures().values())),
    }
