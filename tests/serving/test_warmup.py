"""TF Serving warmup records: one real PredictRequest per signature, replayed through the export."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from datasets.sources import TASK_DATA
from serving.model_card import describe_signatures
from serving.warmup import (
    WARMUP_FILE,
    WarmupInputs,
    default_warmup_inputs,
    first_example_inputs,
    read_warmup_requests,
    replay_warmup_requests,
    warmup_requests,
    write_warmup_requests,
)

# The output keys of every signature, from the contract table (shared/DESIGN.md).
CONTRACT_OUTPUTS = {
    ("captioning", "serving_default"): {"caption"},
    ("captioning", "caption_with_attention"): {"caption", "attention"},
    ("retrieval", "serving_default"): {"score"},
    ("retrieval", "encode_image"): {"embedding"},
    ("retrieval", "encode_text"): {"embedding"},
    ("classification", "serving_default"): {"label", "probabilities"},
    ("vqa", "serving_default"): {"answer", "scores"},
}


def saved_signature_names(version_dir: Path) -> set[str]:
    """The SignatureDef keys TF Serving sees in saved_model.pb (the init op left out)."""
    proto = saved_model_pb2.SavedModel.FromString((version_dir / "saved_model.pb").read_bytes())
    (meta_graph,) = proto.meta_graphs
    return {name for name in meta_graph.signature_def if not name.startswith("__")}


def test_every_export_warms_up_every_signature_through_the_loaded_saved_model(exports):
    default = default_warmup_inputs()
    for name, export in exports.items():
        logs = read_warmup_requests(export.version_dir)
        requests = [log.predict_log.request for log in logs]
        signatures = [request.model_spec.signature_name for request in requests]
        assert sorted(signatures) == sorted(saved_signature_names(export.version_dir)), name
        for request in requests:
            inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
            assert all(value.shape == (1,) for value in inputs.values()), name
            if "image_bytes" in inputs:
                assert inputs["image_bytes"][0] == default.image_bytes
            assert all(
                inputs[key][0] == default.text.encode() for key in inputs.keys() - {"image_bytes"}
            )

        described = describe_signatures(export.module)
        replayed = replay_warmup_requests(export.version_dir)
        assert [signature for signature, _ in replayed] == signatures, name
        for signature, outputs in replayed:
            assert set(outputs) == CONTRACT_OUTPUTS[export.task, signature], (name, signature)
            for key, value in outputs.items():
                expected = described[signature]["outputs"][key]["shape"]
                assert value.shape[0] == 1, (name, signature, key)
                assert list(value.shape[1:]) == expected[1:], (name, signature, key)
            if "embedding" in outputs:
                np.testing.assert_allclose(np.linalg.norm(outputs["embedding"], axis=-1), 1.0, 1e-4)


def test_default_warmup_image_is_a_png_of_a_red_square():
    image = tf.io.decode_png(default_warmup_inputs().image_bytes).numpy()
    assert image.shape == (32, 32, 3)
    assert image[16, 16].tolist() == [255, 0, 0] and image[0, 0].tolist() == [255, 255, 255]


def test_first_example_inputs_are_the_splits_first_image_file_and_text(tiny_shapes_world):
    for task, first_text in (
        ("vqa", lambda e: e.texts[0]),
        ("captioning", lambda e: e.captions[0][0]),
    ):
        examples = TASK_DATA[task].read_shapes(tiny_shapes_world, "train")
        inputs = first_example_inputs(examples)
        assert inputs.image_bytes == Path(examples.image_paths[0]).read_bytes()
        assert inputs.text == first_text(examples)


def test_a_signature_with_a_non_string_input_gets_no_warmup_request():
    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="features")])
    def serve(features):
        return {"sum": tf.reduce_sum(features, axis=-1)}

    with pytest.raises(ValueError, match="'serving_default' input 'features' is float32"):
        warmup_requests({"serving_default": serve}, WarmupInputs(b"", "text"))


def test_warmup_file_holds_at_most_the_1000_records_tf_serving_reads(tmp_path):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        return {"length": tf.strings.length(text)}

    (log,) = warmup_requests({"serving_default": serve}, WarmupInputs(b"", "a text"))
    with pytest.raises(ValueError, match="1 to 1000 warmup records, got 1001"):
        write_warmup_requests(tmp_path, [log] * 1001)
    path = write_warmup_requests(tmp_path, [log] * 1000)
    assert path == tmp_path / WARMUP_FILE
    assert path.name == "tf_serving_warmup_requests" and path.parent.name == "assets.extra"
    assert len(read_warmup_requests(tmp_path)) == 1000
