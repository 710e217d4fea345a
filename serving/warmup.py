"""SavedModel warmup for TF Serving: one real PredictRequest per signature, and their replay.

TF Serving runs the records of `assets.extra/tf_serving_warmup_requests` (a
TFRecord file of `tensorflow_serving.apis.PredictionLog`, at most 1000 records)
through a model version before it serves it, so the first user request does not
pay for graph initialisation (https://www.tensorflow.org/tfx/serving/saved_model_warmup).
A request that fails makes TF Serving refuse the version, so an export can be
checked here with the same records:

    python -m serving.warmup saved_models/show_and_tell/1
"""

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
IMAGE_INPUT = "image_bytes"


@dataclass(frozen=True)
class WarmupInputs:
    """The example every warmup request is made of.

    Each signature input named `image_bytes` gets `image_bytes`; every other
    string input (text, question) gets `text`. A request holds one example.

    Attributes:
        image_bytes: an encoded image (PNG, JPEG, ...), as a client would send it.
        text: a UTF-8 text of the kind the model was trained on.
    """

    image_bytes: bytes
    text: str


def default_warmup_inputs() -> WarmupInputs:
    """A 32x32 PNG of a red square on white, encoded in-graph, and a short caption."""
    rows = tf.range(32)[:, tf.newaxis]
    columns = tf.range(32)[tf.newaxis, :]
    inside = (rows >= 8) & (rows < 24) & (columns >= 8) & (columns < 24)
    green_and_blue = tf.where(inside, 0, 255)
    image = tf.stack([tf.fill([32, 32], 255), green_and_blue, green_and_blue], axis=-1)
    png = tf.io.encode_png(tf.cast(image, tf.uint8))
    return WarmupInputs(image_bytes=png.numpy(), text="a red square")


def first_example_inputs(examples) -> WarmupInputs:
    """The first image (read through the split's image source) and text of a split.

    Args:
        examples: a `datasets.examples.CaptionExamples` or `datasets.labelled_pairs.LabelledPairs`.
    """
    rows = examples.images.rows(examples.image_paths[:1], training=False, seed=None)
    image_bytes = next(iter(rows.take(1)))["image_bytes"].numpy()
    text = examples.captions[0][0] if hasattr(examples, "captions") else examples.texts[0]
    return WarmupInputs(image_bytes=image_bytes, text=text)


def signature_inputs(
    function: tf.types.experimental.PolymorphicFunction,
) -> dict[str, tf.TensorSpec]:
    """Input key -> TensorSpec of a signature function (a tf.function with an input_signature).

    The keys are the TensorSpec names, which is what the SavedModel signature
    (and so a PredictRequest) uses.

    Raises:
        ValueError: if the function has no input_signature or a TensorSpec has no name.
    """
    if function.input_signature is None:
        raise ValueError(f"Signature function {function.name!r} has no input_signature.")
    specs = {}
    for spec in tf.nest.flatten(function.input_signature):
        if not spec.name:
            raise ValueError(f"Signature function {function.name!r} has an unnamed input {spec}.")
        specs[spec.name] = spec
    return specs


def warmup_requests(
    signatures: Mapping[str, tf.types.experimental.PolymorphicFunction], inputs: WarmupInputs
) -> list[prediction_log_pb2.PredictionLog]:
    """One PredictionLog holding a PredictRequest per signature, in signature order.

    Args:
        signatures: signature name -> function, as a serving module's `signatures()`.
        inputs: the example the requests hold.

    Raises:
        ValueError: if a signature has an input that is not a string tensor.
    """
    logs = []
    for name, function in signatures.items():
        request = predict_pb2.PredictRequest()
        request.model_spec.signature_name = name
        for key, spec in signature_inputs(function).items():
            if spec.dtype != tf.string:
                raise ValueError(
                    f"Signature {name!r} input {key!r} is {spec.dtype.name}; warmup requests "
                    "hold raw inputs (encoded image bytes and texts) only."
                )
            value = inputs.image_bytes if key == IMAGE_INPUT else inputs.text.encode("utf-8")
            request.inputs[key].CopyFrom(tf.make_tensor_proto([value], dtype=tf.string))
        logs.append(
            prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
        )
    return logs


def write_warmup_requests(
    version_dir: str | Path, logs: list[prediction_log_pb2.PredictionLog]
) -> Path:
    """Writes `logs` to version_dir/assets.extra/tf_serving_warmup_requests; returns its path.

    Raises:
        ValueError: if there are no records or more than the 1000 TF Serving reads.
    """
    if not 1 <= len(logs) <= 1000:
        raise ValueError(f"TF Serving reads 1 to 1000 warmup records, got {len(logs)}.")
    path = Path(version_dir) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(version_dir: str | Path) -> list[prediction_log_pb2.PredictionLog]:
    """Parses the warmup records of a SavedModel version folder.

    Raises:
        ValueError: if the file is missing or a record is not a PredictionLog of a PredictRequest.
    """
    path = Path(version_dir) / WARMUP_FILE
    if not path.is_file():
        raise ValueError(f"{path} does not exist: the export has no warmup requests.")
    logs = []
    for index, record in enumerate(tf.data.TFRecordDataset(str(path)).as_numpy_iterator()):
        log = prediction_log_pb2.PredictionLog.FromString(record)
        if log.WhichOneof("log_type") != "predict_log":
            raise ValueError(f"{path}: record {index} is not a predict_log PredictionLog.")
        logs.append(log)
    return logs


def replay_warmup_requests(version_dir: str | Path) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Loads the SavedModel and runs each warmup request through its signature.

    Returns:
        (signature name, output name -> array) per record, in file order.

    Raises:
        ValueError: if a record names a signature the SavedModel does not have.
    """
    loaded = tf.saved_model.load(str(version_dir))
    results = []
    for log in read_warmup_requests(version_dir):
        request = log.predict_log.request
        name = request.model_spec.signature_name
        if name not in loaded.signatures:
            raise ValueError(
                f"{Path(version_dir) / WARMUP_FILE}: signature {name!r} is not in the "
                f"SavedModel, which has {sorted(loaded.signatures)}."
            )
        inputs = {key: tf.constant(tf.make_ndarray(proto)) for key, proto in request.inputs.items()}
        outputs = loaded.signatures[name](**inputs)
        results.append((name, {key: value.numpy() for key, value in outputs.items()}))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Replay an export's TF Serving warmup requests.")
    parser.add_argument("version_dir", help="a SavedModel folder, e.g. saved_models/vqa/1")
    args = parser.parse_args(argv)
    for name, outputs in replay_warmup_requests(args.version_dir):
        shapes = ", ".join(
            f"{key} {value.dtype} {list(value.shape)}" for key, value in outputs.items()
        )
        print(f"{name}: {shapes}")


if __name__ == "__main__":
    main()
