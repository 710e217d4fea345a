"""Writes a serving module as a new SavedModel version in the TF Serving layout."""

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import tensorflow as tf

from serving.versions import next_version_dir, publish
from serving.warmup import (
    WarmupInputs,
    default_warmup_inputs,
    warmup_requests,
    write_warmup_requests,
)


def export_saved_model(
    module: tf.Module,
    export_dir: str | Path,
    extra_files: Mapping[str, object] | None = None,
    warmup_inputs: WarmupInputs | None = None,
    keras_model=None,
) -> Path:
    """Saves `module` with its `signatures()` to export_dir/<next version>/.

    The SavedModel is written to a hidden staging folder and renamed into place
    when complete, so a crash never leaves a version TF Serving would load half
    written. `extra_files` (name -> JSON-able object, or str for text) go to
    assets.extra/, which TF Serving ignores when loading, beside
    tf_serving_warmup_requests: one PredictRequest per signature (serving.warmup).
    `keras_model` is saved there too, as model.keras: what publish_encoders.py and
    further fine-tuning read (the SavedModel keeps only traced functions).

    Args:
        module: a serving module whose `signatures()` maps names to tf.functions
            with an input_signature of named string TensorSpecs.
        export_dir: the model's folder; the version goes to a new integer subfolder.
        extra_files: more files for assets.extra/ (metrics, vocabulary, model card).
        warmup_inputs: the example the warmup requests hold; default: a small PNG
            and a short text (`serving.warmup.default_warmup_inputs`).
        keras_model: the trained Keras model, or None to leave model.keras out.

    Returns:
        The published version folder.
    """
    signatures = module.signatures()
    logs = warmup_requests(signatures, warmup_inputs or default_warmup_inputs())
    export_dir = Path(export_dir)
    export_dir.mkdir(parents=True, exist_ok=True)
    version_dir = next_version_dir(export_dir)
    staging_dir = export_dir / f".staging-{version_dir.name}-{os.getpid()}"
    shutil.rmtree(staging_dir, ignore_errors=True)
    try:
        tf.saved_model.save(module, str(staging_dir), signatures=signatures)
        extra_dir = staging_dir / "assets.extra"
        extra_dir.mkdir(exist_ok=True)
        for name, content in (extra_files or {}).items():
            text = content if isinstance(content, str) else json.dumps(content, indent=2)
            (extra_dir / name).write_text(text, encoding="utf-8")
        if keras_model is not None:
            keras_model.save(extra_dir / "model.keras")
        write_warmup_requests(staging_dir, logs)
        return publish(staging_dir, version_dir)
    finally:
        shutil.rmtree(staging_dir, ignore_errors=True)
