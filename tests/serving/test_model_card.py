"""The model card: what was trained on what, how well it does, how to call it, what built it."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import keras
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from datasets.sources import TASK_DATA
from serving.model_card import build_model_card
from serving.warmup import read_warmup_requests, replay_warmup_requests

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = {
    "model": "dual_encoder",
    "task": "retrieval",
    "dataset": "shapes:48,8,8",
    "test_split": "shapes/test",
    "vocabulary_size": 41,
    "metrics": {"text_to_image_r@1": 0.5},
    "baseline": {"text_to_image_r@1": 0.125},
    "baseline_name": "random ranking",
    "settings": {"model": "dual_encoder", "epochs": 1, "batch_size": 8, "learning_rate": 0.001},
    "training_seconds": 3.5,
    "evaluation_seconds": 0.5,
    "git_commit": "0f0e39b",
}


def saved_signature_cards(version_dir: Path) -> dict:
    """The SignatureDefs of saved_model.pb in the card's form, to check the card against."""

    def cards(tensors):
        return {
            key: {
                "dtype": tf.as_dtype(info.dtype).name,
                "shape": tf.TensorShape(info.tensor_shape).as_list(),
            }
            for key, info in tensors.items()
        }

    proto = saved_model_pb2.SavedModel.FromString((version_dir / "saved_model.pb").read_bytes())
    (meta_graph,) = proto.meta_graphs
    return {
        name: {"inputs": cards(signature.inputs), "outputs": cards(signature.outputs)}
        for name, signature in meta_graph.signature_def.items()
        if not name.startswith("__")
    }


def test_card_fields_and_signatures_match_the_saved_model(exports):
    export = exports["dual_encoder"]
    exported_at = datetime(2026, 3, 1, 14, 30, 5, tzinfo=timezone(timedelta(hours=2)))
    card = build_model_card(SUMMARY, export.module, exported_at)
    assert json.loads(json.dumps(card)) == card
    expected = {
        key: SUMMARY[key] for key in SUMMARY if key not in ("settings", "evaluation_seconds")
    }
    assert {key: card[key] for key in expected} == expected
    assert card["training_settings"] == SUMMARY["settings"]
    assert card["exported_at"] == "2026-03-01T12:30:05Z"
    assert card["tensorflow_version"] == tf.__version__
    assert card["keras_version"] == keras.__version__
    assert card["signatures"] == saved_signature_cards(export.version_dir)
    assert card["signatures"]["encode_image"] == {
        "inputs": {"image_bytes": {"dtype": "string", "shape": [None]}},
        "outputs": {"embedding": {"dtype": "float32", "shape": [None, 128]}},
    }


def test_card_refuses_a_summary_without_a_field(exports):
    summary = {key: value for key, value in SUMMARY.items() if key != "git_commit"}
    with pytest.raises(ValueError, match="'git_commit'"):
        build_model_card(summary, exports["vqa"].module)


@pytest.mark.slow
def test_train_exports_model_card_and_warmup_of_real_test_data(tiny_shapes_world, tmp_path):
    export_dir = tmp_path / "image_only"
    started = datetime.now(UTC).replace(microsecond=0)
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            *("--model", "image_only", "--dataset", "shapes:48,8,8", "--epochs", "1"),
            *("--batch-size", "8", "--image-size", "32", "--export-dir", str(export_dir)),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "MMZOO_DATA_DIR": str(tiny_shapes_world.parent)},
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    version_dir = export_dir / "1"
    card = json.loads((version_dir / "assets.extra" / "model_card.json").read_text())
    metrics = json.loads((version_dir / "assets.extra" / "metrics.json").read_text())
    assert (card["model"], card["task"], card["dataset"]) == (
        "image_only",
        "classification",
        "shapes:48,8,8",
    )
    assert card["metrics"] == metrics["metrics"] and card["baseline"] == metrics["baseline"]
    assert card["vocabulary_size"] == metrics["extra"]["vocabulary_size"]
    assert card["git_commit"] == metrics["extra"]["git_commit"]
    settings = card["training_settings"]
    assert (settings["epochs"], settings["batch_size"], settings["image_size"]) == (1, 8, 32)
    exported_at = datetime.strptime(card["exported_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert started <= exported_at.replace(tzinfo=UTC) <= datetime.now(UTC)
    assert card["signatures"] == saved_signature_cards(version_dir)

    test = TASK_DATA["classification"].read_shapes(tiny_shapes_world, "test")
    (log,) = read_warmup_requests(version_dir)
    inputs = {
        key: tf.make_ndarray(proto)[0] for key, proto in log.predict_log.request.inputs.items()
    }
    assert inputs == {
        "image_bytes": Path(test.image_paths[0]).read_bytes(),
        "text": test.texts[0].encode(),
    }
    ((signature, outputs),) = replay_warmup_requests(version_dir)
    assert signature == "serving_default"
    probabilities = card["signatures"][signature]["outputs"]["probabilities"]["shape"]
    assert list(outputs["probabilities"].shape) == [1, *probabilities[1:]]
    assert outputs["label"].shape == (1,)
