"""Writes the TF Serving REST body and gRPC PredictRequest for image files and texts.

The files are the exact requests a TF Serving server takes, to send with curl or
a gRPC client (docs/serving.md):

    python tools/serving_requests.py --model show_and_tell --image photo.jpg \\
        --rest request.json --grpc request.pb --print-curl
    python tools/serving_requests.py --model vqa --image photo.jpg \\
        --text "what colour is the circle?" --rest request.json
    python tools/serving_requests.py --model dual_encoder --signature encode_text \\
        --text "a red circle" --grpc request.pb --export saved_models/dual_encoder

The REST body is TF Serving's row format: {"signature_name": ..., "instances":
[{"image_bytes": {"b64": ...}, "text": ...}, ...]}, one object per example with
the image base64-encoded and the text as a JSON string. The gRPC request is a
serialized tensorflow_serving.apis.PredictRequest: model_spec.name,
model_spec.signature_name, one string tensor [N] per input.

The signature's input names come from the zoo's contract for the registered
model's task (DESIGN.md; only the signatures its registry entry says its export
has), or, with `--export DIR`, from that SavedModel, through
which the written requests are then also run locally, printing what a server
would answer (as predict.py prints it). Images and texts pair as in predict.py.
Errors exit with status 2 and a message naming the problem.
"""

import argparse
import base64
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import predict_pb2  # noqa: E402

from predict import (  # noqa: E402
    IMAGE_INPUT,
    UsageError,
    batch_inputs,
    call_signature,
    get_signature,
    input_specs,
    load_export,
    model_message,
    pair_examples,
    read_image,
    result_lines,
)

# DESIGN.md's serving signatures: task -> signature -> input names.
SIGNATURE_INPUTS = {
    "captioning": {
        "serving_default": (IMAGE_INPUT,),
        "caption_with_attention": (IMAGE_INPUT,),
    },
    "retrieval": {
        "serving_default": (IMAGE_INPUT, "text"),
        "encode_image": (IMAGE_INPUT,),
        "encode_text": ("text",),
    },
    "vqa": {"serving_default": (IMAGE_INPUT, "question")},
    "classification": {"serving_default": (IMAGE_INPUT, "text")},
}


def contract_inputs(model: str, signature_name: str) -> tuple[str, ...]:
    """The input names of a registered model's signature, from its task's contract.

    Raises:
        UsageError: the model is not registered, or its export has no such signature.
    """
    from models import get_model_spec, model_names

    if model not in model_names():
        raise UsageError(
            f"model {model!r} is not registered (the zoo has {model_names()}); pass "
            "--export DIR to read the signature's inputs from its SavedModel"
        )
    spec = get_model_spec(model)
    signatures = SIGNATURE_INPUTS[spec.task]
    if signature_name not in signatures:
        raise UsageError(
            f"{spec.task} models have no signature {signature_name!r}; they have "
            f"{sorted(signatures)}"
        )
    if signature_name not in spec.signatures:
        raise UsageError(
            f"model {model!r} exports no signature {signature_name!r} (other {spec.task} "
            f"models do); its export has {list(spec.signatures)}"
        )
    return signatures[signature_name]


def rest_body(signature_name: str, examples: Sequence[dict[str, str]]) -> dict:
    """The REST predict body in row format: one instance object per example.

    Args:
        signature_name: the signature to call.
        examples: input name -> image path or text, as `predict.pair_examples` returns.

    Returns:
        {"signature_name": ..., "instances": [{"image_bytes": {"b64": ...}, "text": ...}]}.
    """
    instances = [
        {
            name: {"b64": base64.b64encode(read_image(value)).decode("ascii")}
            if name == IMAGE_INPUT
            else value
            for name, value in example.items()
        }
        for example in examples
    ]
    return {"signature_name": signature_name, "instances": instances}


def predict_request(
    model: str,
    signature_name: str,
    examples: Sequence[dict[str, str]],
    version: int | None = None,
) -> predict_pb2.PredictRequest:
    """The gRPC PredictRequest: one string tensor [N] per input.

    Args:
        model: the model name the server serves it under (model_spec.name).
        signature_name: the signature to call.
        examples: input name -> image path or text, as `predict.pair_examples` returns.
        version: the model version to call (model_spec.version); None for the newest.
    """
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    for name, values in batch_inputs(examples).items():
        request.inputs[name].CopyFrom(
            tf.make_tensor_proto(values, dtype=tf.string, shape=[len(values)])
        )
    return request


def rest_columns(body: dict, input_names: Sequence[str]) -> dict[str, list[bytes]]:
    """Decodes a row-format REST body as TF Serving does: input name -> its values.

    An instance is an object of named inputs, or, for a signature of one input, the
    value itself. {"b64": ...} is base64-decoded; a string is UTF-8 encoded.

    Raises:
        UsageError: no non-empty "instances" list, an instance whose names differ
            from the signature's inputs, or a value that is neither kind.
    """
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances:
        raise UsageError('the REST body needs a non-empty "instances" list, as TF Serving does')
    columns = {name: [] for name in input_names}
    for position, instance in enumerate(instances):
        named = isinstance(instance, dict) and set(instance) != {"b64"}
        if not named and len(input_names) == 1:
            instance = {input_names[0]: instance}
        if not isinstance(instance, dict) or set(instance) != set(input_names):
            raise UsageError(
                f"REST instance {position} does not name the signature's inputs "
                f"{list(input_names)}: {str(instance)[:80]}"
            )
        for name, value in instance.items():
            if isinstance(value, dict) and set(value) == {"b64"}:
                columns[name].append(base64.b64decode(value["b64"]))
            elif isinstance(value, str):
                columns[name].append(value.encode("utf-8"))
            else:
                raise UsageError(
                    f'REST instance {position}: {name} is neither a string nor {{"b64": ...}}'
                )
    return columns


def replay_rest(loaded, body: dict) -> dict[str, list]:
    """Runs a REST predict body through a loaded SavedModel, as a server would.

    Args:
        loaded: what `tf.saved_model.load` returned.
        body: the parsed JSON body.

    Returns:
        Output name -> values, as `predict.call_signature` returns them.
    """
    signature = get_signature(loaded, body.get("signature_name", "serving_default"))
    return call_signature(signature, rest_columns(body, list(input_specs(signature))))


def replay_grpc(loaded, request: predict_pb2.PredictRequest) -> dict[str, list]:
    """Runs a PredictRequest through a loaded SavedModel, as a server would.

    Args:
        loaded: what `tf.saved_model.load` returned.
        request: the request (its model_spec.name is not checked).

    Returns:
        Output name -> values, as `predict.call_signature` returns them.
    """
    signature = get_signature(loaded, request.model_spec.signature_name or "serving_default")
    columns = {name: tf.make_ndarray(proto).tolist() for name, proto in request.inputs.items()}
    return call_signature(signature, columns)


def curl_command(model: str, rest_path: str, version: int | None = None) -> str:
    """The curl command that posts the REST body to a local TF Serving server."""
    versioned = "" if version is None else f"/versions/{version}"
    url = f"http://localhost:8501/v1/models/{model}{versioned}:predict"
    return (
        "curl -X POST -H 'Content-Type: application/json' "
        f"--data-binary @{shlex.quote(rest_path)} {shlex.quote(url)}"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Write TF Serving REST and gRPC predict requests for image files and texts."
    )
    parser.add_argument("--model", required=True, help="the model name the server serves")
    parser.add_argument("--signature", default="serving_default", help="default: %(default)s")
    parser.add_argument(
        "--version", type=int, help="a model version to call (default: the newest served)"
    )
    parser.add_argument("--image", nargs="+", default=[], metavar="FILE", help="image files")
    parser.add_argument("--text", nargs="+", default=[], metavar="TEXT", help="texts or questions")
    parser.add_argument("--rest", metavar="OUT.json", help="write the REST predict body here")
    parser.add_argument("--grpc", metavar="OUT.pb", help="write the serialized PredictRequest here")
    parser.add_argument(
        "--print-curl", action="store_true", help="print the curl command posting --rest"
    )
    parser.add_argument(
        "--export",
        metavar="DIR",
        help="a SavedModel (or saved_models/<model>): read the inputs from it and run the "
        "written requests through it locally",
    )
    args = parser.parse_args(argv)
    if not (args.rest or args.grpc):
        parser.error("pass --rest OUT.json, --grpc OUT.pb or both")
    if args.print_curl and not args.rest:
        parser.error("--print-curl needs --rest OUT.json")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (2 on any error, named on stderr)."""
    args = parse_args(argv)
    try:
        if args.export:
            loaded = load_export(args.export)
            input_names = list(input_specs(get_signature(loaded, args.signature)))
        else:
            input_names = contract_inputs(args.model, args.signature)
        examples = pair_examples(input_names, args.image, args.text)
        replies = {}
        if args.rest:
            body = rest_body(args.signature, examples)
            Path(args.rest).write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
            if args.export:
                replies["REST body"] = replay_rest(loaded, body)
        if args.grpc:
            request = predict_request(args.model, args.signature, examples, args.version)
            Path(args.grpc).write_bytes(request.SerializeToString())
            if args.export:
                replies["gRPC request"] = replay_grpc(loaded, request)
    except UsageError as error:
        print(f"serving_requests.py: error: {error}", file=sys.stderr)
        return 2
    except tf.errors.InvalidArgumentError as error:
        message = f"the model refused the request: {model_message(error)}"
        print(f"serving_requests.py: error: {message}", file=sys.stderr)
        return 2
    if args.print_curl:
        print(curl_command(args.model, args.rest, args.version))
    for kind, outputs in replies.items():
        print(f"{kind} run through {args.export}:")
        print("\n".join(result_lines(examples, outputs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
