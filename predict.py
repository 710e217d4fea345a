"""Runs an exported model on image files and texts and prints one JSON line per example.

It loads the SavedModel with `tf.saved_model.load` and calls one of its serving
signatures, the way TF Serving would; it imports nothing but TensorFlow, so it
works on any export, anywhere (copied alone, too). A `--tokenizer wordpiece`
export also needs tensorflow-text's ops: they are imported when tensorflow-text
is installed, and their absence is an error that says so.

    python predict.py saved_models/show_and_tell --image photo.jpg
    python predict.py saved_models/dual_encoder/3 --signature encode_text --text "a red circle"
    python predict.py saved_models/vqa --image photo.jpg --text "what colour is the circle?"
    python predict.py saved_models/dual_encoder --list

EXPORT_DIR is a version folder (one holding saved_model.pb) or a model folder of
integer versions, which means its newest version. `--image` feeds the signature's
`image_bytes` input (the file's encoded bytes), `--text` its `text` or `question`
input. A signature taking both pairs them: as many images as texts (the i-th image
with the i-th text), one image with several texts, or several images with one text.

Each line is {"inputs": {...}, "outputs": {...}}: strings decoded, floats rounded
to 4 decimals. Bad arguments, a missing file, a signature input that cannot be fed
and an error the model raises (such as a file that is not an image) exit with
status 2 and a message naming the problem.
"""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import tensorflow as tf

IMAGE_INPUT = "image_bytes"
TEXT_INPUTS = ("text", "question")
DIGITS = 4


class UsageError(Exception):
    """A request that cannot be built or run; the message names the file, input or value."""


def resolve_version_dir(export_dir: str | Path) -> Path:
    """The SavedModel folder: export_dir itself, or its newest integer version.

    Args:
        export_dir: a folder holding saved_model.pb, or one of integer version folders.

    Returns:
        The folder holding saved_model.pb.

    Raises:
        UsageError: neither kind of folder.
    """
    export_dir = Path(export_dir)
    if (export_dir / "saved_model.pb").is_file():
        return export_dir
    versions = [
        entry
        for entry in (export_dir.iterdir() if export_dir.is_dir() else [])
        if entry.name.isdigit() and (entry / "saved_model.pb").is_file()
    ]
    if not versions:
        raise UsageError(
            f"{export_dir} is neither a SavedModel folder (with saved_model.pb) nor a "
            "folder of integer versions holding one"
        )
    return max(versions, key=lambda entry: int(entry.name))


def load_export(export_dir: str | Path):
    """Loads the SavedModel that `export_dir` names (see `resolve_version_dir`)."""
    version_dir = resolve_version_dir(export_dir)
    try:
        import tensorflow_text  # noqa: F401  registers the ops wordpiece exports use
    except ImportError:
        pass
    try:
        return tf.saved_model.load(str(version_dir))
    except RuntimeError as error:
        if "Op type not registered" not in str(error):
            raise
        raise UsageError(
            f"{version_dir} needs ops this process does not have ({str(error).split('.')[0]}); "
            "a --tokenizer wordpiece export needs tensorflow-text: pip install "
            "tensorflow-text (the version matching TensorFlow). Its model card lists the ops "
            "under non_core_ops."
        ) from error


def get_signature(loaded, name: str):
    """The signature `name` of a loaded SavedModel.

    Raises:
        UsageError: the export has no such signature (the message lists those it has).
    """
    if name not in loaded.signatures:
        raise UsageError(
            f"the export has no signature {name!r}; it has {sorted(loaded.signatures)}"
        )
    return loaded.signatures[name]


def input_specs(signature) -> dict[str, tf.TensorSpec]:
    """The signature's inputs: name -> TensorSpec, names sorted."""
    return dict(sorted(signature.structured_input_signature[1].items()))


def describe_spec(spec: tf.TensorSpec) -> str:
    """A TensorSpec as DESIGN.md writes it, such as `string[None]` or `float32[None, 128]`."""
    dimensions = ", ".join(str(size) for size in spec.shape.as_list())
    return f"{spec.dtype.name}[{dimensions}]"


def describe_signatures(loaded) -> str:
    """Every signature of a loaded SavedModel with its inputs and outputs, one per line."""
    lines = []
    for name in sorted(loaded.signatures):
        signature = loaded.signatures[name]
        for label, specs in (
            ("inputs", input_specs(signature)),
            ("outputs", dict(sorted(signature.structured_outputs.items()))),
        ):
            described = ", ".join(f"{key}: {describe_spec(spec)}" for key, spec in specs.items())
            lines.append(f"{name}  {label}: {described}")
    return "\n".join(lines)


def pair_examples(
    input_names: Sequence[str], images: Sequence[str], texts: Sequence[str]
) -> list[dict[str, str]]:
    """Pairs image files and texts into the examples of one request.

    `image_bytes` takes the images and `text`/`question` the texts. With both, the
    counts must be equal (pairs in order), or one image goes with every text, or
    one text with every image (the repetition is reported on stderr).

    Args:
        input_names: the signature's input names.
        images: image file paths, for `image_bytes`.
        texts: the texts, for `text` or `question`.

    Returns:
        One dict per example: input name -> image path or text.

    Raises:
        UsageError: an input that is neither, a missing or unused modality, or counts
            that do not pair.
    """
    unknown = [name for name in input_names if name != IMAGE_INPUT and name not in TEXT_INPUTS]
    if unknown:
        raise UsageError(
            f"the signature has inputs {unknown} that cannot be fed from files: --image feeds "
            f"{IMAGE_INPUT}, --text feeds {' or '.join(TEXT_INPUTS)}"
        )
    text_names = [name for name in input_names if name in TEXT_INPUTS]
    columns = {}
    if IMAGE_INPUT in input_names:
        columns[IMAGE_INPUT] = list(images)
    elif images:
        raise UsageError(f"the signature takes no image (its inputs: {list(input_names)})")
    for name in text_names:
        columns[name] = list(texts)
    if not text_names and texts:
        raise UsageError(f"the signature takes no text (its inputs: {list(input_names)})")
    for name, values in columns.items():
        if not values:
            option = "--image FILE" if name == IMAGE_INPUT else "--text TEXT"
            raise UsageError(f"the signature's input {name} needs at least one {option}")
    if IMAGE_INPUT in columns and text_names and len(images) != len(texts):
        if len(images) == 1:
            columns[IMAGE_INPUT] = list(images) * len(texts)
            print(f"pairing the one image with each of the {len(texts)} texts", file=sys.stderr)
        elif len(texts) == 1:
            for name in text_names:
                columns[name] = list(texts) * len(images)
            print(f"pairing the one text with each of the {len(images)} images", file=sys.stderr)
        else:
            raise UsageError(
                f"{len(images)} images and {len(texts)} texts do not pair: pass as many "
                "of each, or one image with several texts, or several images with one text"
            )
    size = len(next(iter(columns.values())))
    return [{name: values[i] for name, values in columns.items()} for i in range(size)]


def read_image(path: str) -> bytes:
    """The encoded bytes of an image file.

    Raises:
        UsageError: no such file, or it cannot be read.
    """
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read image file {path}: {error.strerror}") from error


def batch_inputs(examples: Sequence[dict[str, str]]) -> dict[str, list[bytes]]:
    """The request's columns: image files read, texts UTF-8 encoded."""
    columns = {name: [] for name in examples[0]}
    for example in examples:
        for name, value in example.items():
            encoded = read_image(value) if name == IMAGE_INPUT else value.encode("utf-8")
            columns[name].append(encoded)
    return columns


def call_signature(signature, columns: dict[str, list[bytes]]) -> dict[str, list]:
    """Runs the signature on string columns.

    Args:
        signature: a loaded SavedModel signature.
        columns: input name -> its values, one per example.

    Returns:
        Output name -> its values (nested lists, the batch first), names sorted.

    Raises:
        tf.errors.InvalidArgumentError: the model refused the request.
    """
    tensors = {name: tf.constant(values, tf.string) for name, values in columns.items()}
    outputs = signature(**tensors)
    return {name: outputs[name].numpy().tolist() for name in sorted(outputs)}


def run_examples(signature, examples: Sequence[dict[str, str]]) -> dict[str, list]:
    """`call_signature` on the examples of `pair_examples`, with its files read.

    Raises:
        UsageError: an image file cannot be read, or the model refused the request
            (its own message, and the image files of the request).
    """
    try:
        return call_signature(signature, batch_inputs(examples))
    except tf.errors.InvalidArgumentError as error:
        files = list(dict.fromkeys(ex[IMAGE_INPUT] for ex in examples if IMAGE_INPUT in ex))
        named = f" (image files: {', '.join(files)})" if files else ""
        raise UsageError(f"the model refused the request{named}: {model_message(error)}") from error


def model_message(error: tf.errors.InvalidArgumentError) -> str:
    """An op error's message without TensorFlow's node and stack trace lines."""
    noise = ("Graph execution error", "Detected at node", "<stack traces", "[[{{node")
    lines = [line.strip() for line in error.message.splitlines()]
    return " ".join(line for line in lines if line and not line.startswith(noise))


def json_ready(value):
    """A `tolist()` value made JSON-able: bytes decoded, floats rounded."""
    if isinstance(value, list):
        return [json_ready(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, float):
        return round(value, DIGITS)
    return value


def result_lines(examples: Sequence[dict[str, str]], outputs: dict[str, list]) -> list[str]:
    """One JSON line per example: {"inputs": {...}, "outputs": {...}}.

    Args:
        examples: what `pair_examples` returned (image paths are shown as "image").
        outputs: output name -> values with the batch first, as `call_signature` returns.

    Returns:
        The lines, in the examples' order.
    """
    lines = []
    for i, example in enumerate(examples):
        inputs = {
            ("image" if name == IMAGE_INPUT else name): value for name, value in example.items()
        }
        row = {name: json_ready(values[i]) for name, values in outputs.items()}
        lines.append(json.dumps({"inputs": inputs, "outputs": row}, ensure_ascii=False))
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run an exported model's serving signature on image files and texts.",
        epilog="With both inputs: as many images as texts, one image with several texts, "
        "or several images with one text.",
    )
    parser.add_argument("export_dir", help="a SavedModel version folder, or saved_models/<model>")
    parser.add_argument("--signature", default="serving_default", help="default: %(default)s")
    parser.add_argument("--image", nargs="+", default=[], metavar="FILE", help="image files")
    parser.add_argument("--text", nargs="+", default=[], metavar="TEXT", help="texts or questions")
    parser.add_argument(
        "--list", action="store_true", help="print the signatures with their inputs and outputs"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (2 on any error, named on stderr)."""
    args = parse_args(argv)
    try:
        loaded = load_export(args.export_dir)
        if args.list:
            print(describe_signatures(loaded))
            return 0
        signature = get_signature(loaded, args.signature)
        examples = pair_examples(list(input_specs(signature)), args.image, args.text)
        outputs = run_examples(signature, examples)
    except UsageError as error:
        print(f"predict.py: error: {error}", file=sys.stderr)
        return 2
    print("\n".join(result_lines(examples, outputs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
