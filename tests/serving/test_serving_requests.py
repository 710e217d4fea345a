"""tools/serving_requests.py: TF Serving REST bodies and gRPC requests built from files.

Replayed through the loaded export (decoded as TF Serving decodes them), each must
give exactly the outputs of calling the signature directly on the same bytes.
"""

import base64
import importlib.util
import json
from pathlib import Path

import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from models import get_model_spec
from predict import UsageError

TOOL = Path(__file__).resolve().parents[2] / "tools" / "serving_requests.py"
spec = importlib.util.spec_from_file_location("serving_requests", TOOL)
serving_requests = importlib.util.module_from_spec(spec)
spec.loader.exec_module(serving_requests)


def direct(loaded_export, signature: str, **columns) -> dict[str, list]:
    """The signature called directly on string tensors, outputs as lists."""
    outputs = loaded_export.signatures[signature](
        **{name: tf.constant(values, tf.string) for name, values in columns.items()}
    )
    return {name: outputs[name].numpy().tolist() for name in sorted(outputs)}


def b64(path: str) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def write_requests(tmp_path, *arguments: str) -> tuple[int, dict, predict_pb2.PredictRequest]:
    """Runs the tool with --rest and --grpc into tmp_path; returns (status, body, request)."""
    rest, grpc = tmp_path / "request.json", tmp_path / "request.pb"
    status = serving_requests.main([*arguments, "--rest", str(rest), "--grpc", str(grpc)])
    body = json.loads(rest.read_text(encoding="utf-8"))
    return status, body, predict_pb2.PredictRequest.FromString(grpc.read_bytes())


def test_vqa_requests_are_tf_serving_s_exact_formats_and_replay_to_the_direct_outputs(
    exports, loaded, tmp_path
):
    export = exports["vqa"]
    questions = [export.text, "what colour is the circle?"]
    status, body, request = write_requests(
        tmp_path, "--model", "vqa", "--image", export.image_path, "--text", *questions
    )
    assert status == 0
    assert body == {
        "signature_name": "serving_default",
        "instances": [
            {"image_bytes": {"b64": b64(export.image_path)}, "question": question}
            for question in questions
        ],
    }
    assert request.model_spec.name == "vqa" and not request.model_spec.HasField("version")
    assert request.model_spec.signature_name == "serving_default"
    assert set(request.inputs) == {"image_bytes", "question"}
    for proto in request.inputs.values():
        assert proto.dtype == tf.string.as_datatype_enum
        assert [dim.size for dim in proto.tensor_shape.dim] == [2]
    assert list(request.inputs["question"].string_val) == [q.encode() for q in questions]

    image = Path(export.image_path).read_bytes()
    expected = direct(
        loaded("vqa"), "serving_default", image_bytes=[image, image], question=questions
    )
    assert serving_requests.replay_rest(loaded("vqa"), body) == expected
    assert serving_requests.replay_grpc(loaded("vqa"), request) == expected


def test_every_retrieval_signature_replays_to_the_direct_outputs(exports, loaded, tmp_path):
    export = exports["dual_encoder"]
    folder = Path(export.image_path).parent
    images = [export.image_path, str(folder / "000002.jpg")]
    texts = [export.text, "a large red circle in the middle"]
    cases = {
        "serving_default": (["--image", *images, "--text", *texts], {"text": texts}),
        "encode_image": (["--image", *images], {}),
        "encode_text": (["--text", *texts], {"text": texts}),
    }
    for signature, (arguments, text_columns) in cases.items():
        status, body, request = write_requests(
            tmp_path,
            "--model",
            "dual_encoder",
            "--signature",
            signature,
            "--version",
            "2",
            *arguments,
        )
        columns = dict(text_columns)
        if "--image" in arguments:
            columns["image_bytes"] = [Path(path).read_bytes() for path in images]
        expected = direct(loaded("dual_encoder"), signature, **columns)
        assert status == 0 and body["signature_name"] == signature
        assert request.model_spec.version.value == 2
        assert [set(instance) for instance in body["instances"]] == [set(columns)] * 2
        assert serving_requests.replay_rest(loaded("dual_encoder"), body) == expected, signature
        assert serving_requests.replay_grpc(loaded("dual_encoder"), request) == expected


def test_the_bare_b64_instances_of_a_one_input_signature_give_the_named_ones_outputs(
    exports, loaded, tmp_path
):
    export = exports["show_and_tell"]
    status, body, _ = write_requests(tmp_path, "--model", "show_and_tell", "--image", __file__)
    assert status == 0
    assert body["instances"] == [{"image_bytes": {"b64": b64(__file__)}}]
    named = {"instances": [{"image_bytes": {"b64": b64(export.image_path)}}]}
    bare = {"instances": [{"b64": b64(export.image_path)}]}  # the README's form, no signature
    captions = serving_requests.replay_rest(loaded("show_and_tell"), named)
    assert serving_requests.replay_rest(loaded("show_and_tell"), bare) == captions
    image = Path(export.image_path).read_bytes()
    assert captions == direct(loaded("show_and_tell"), "serving_default", image_bytes=[image])


def test_export_reads_the_inputs_from_the_savedmodel_and_prints_the_replies(
    exports, tmp_path, capsys
):
    export = exports["fusion_classifier"]
    rest = tmp_path / "request.json"
    status = serving_requests.main(
        ["--model", "served_name", "--export", str(export.version_dir.parent)]
        + ["--image", export.image_path, "--text", export.text, "--rest", str(rest)]
        + ["--print-curl", "--version", "3"]
    )
    out = capsys.readouterr().out.splitlines()
    assert status == 0
    assert out[0] == (
        f"curl -X POST -H 'Content-Type: application/json' --data-binary @{rest} "
        "http://localhost:8501/v1/models/served_name/versions/3:predict"
    )
    assert out[1] == f"REST body run through {export.version_dir.parent}:"
    reply = json.loads(out[2])
    assert reply["inputs"] == {"image": export.image_path, "text": export.text}
    assert set(reply["outputs"]) == {"label", "probabilities"}


def test_the_contract_table_matches_every_export_s_signatures(exports):
    for name, export in exports.items():
        assert set(export.module.signatures()) == set(get_model_spec(name).signatures), name
        for signature, function in export.module.signatures().items():
            names = sorted(spec.name for spec in function.input_signature)
            contract = serving_requests.contract_inputs(name, signature)
            assert sorted(contract) == names, (name, signature)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--model", "nobody", "--text", "a"], "model 'nobody' is not registered"),
        (["--model", "vqa", "--signature", "encode_text", "--text", "a"], "no signature"),
        (
            ["--model", "retrieval_attention", "--signature", "encode_text", "--text", "a"],
            "model 'retrieval_attention' exports no signature 'encode_text'",
        ),
        (
            ["--model", "show_and_tell", "--signature", "caption_with_attention"]
            + ["--image", "x.jpg"],
            "model 'show_and_tell' exports no signature 'caption_with_attention'",
        ),
        (["--model", "dual_encoder", "--signature", "encode_text", "--image", "x.jpg"], "no image"),
        (["--model", "show_and_tell", "--image", "/no/such.jpg"], "cannot read image file"),
    ],
)
def test_errors_exit_2_naming_the_problem(tmp_path, capsys, arguments, message):
    rest = tmp_path / "request.json"
    assert serving_requests.main([*arguments, "--rest", str(rest)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("serving_requests.py: error: ") and message in err
    assert not rest.exists()


def test_a_body_that_does_not_name_the_inputs_is_refused_as_tf_serving_refuses_it():
    with pytest.raises(UsageError, match=r"instance 0 does not name the signature's inputs"):
        serving_requests.rest_columns({"instances": [{"b64": "AA=="}]}, ["image_bytes", "text"])
    with pytest.raises(UsageError, match="non-empty"):
        serving_requests.rest_columns({"instances": []}, ["text"])
    with pytest.raises(UsageError, match='text is neither a string nor {"b64"'):
        serving_requests.rest_columns({"instances": [{"text": 3}]}, ["text"])
    with pytest.raises(SystemExit):
        serving_requests.main(["--model", "vqa", "--text", "a"])  # neither --rest nor --grpc
