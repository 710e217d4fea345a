"""Publish a trained model's encoders as TF2 Hub reusable SavedModels.

python publish_encoders.py saved_models/dual_encoder/1 --output hub/dual_encoder
python publish_encoders.py saved_models/show_and_tell/2 --output hub/captioner --encoders image

Writes OUTPUT/image_encoder/ and OUTPUT/text_encoder/ (those the model has, or
those --encoders names) and prints the train.py flags that build a model on
them: --image-encoder hub:OUTPUT/image_encoder, --text-encoder hub:OUTPUT/text_encoder.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "export_dir",
        help="an export version folder written by train.py (saved_models/<model>/<version>), "
        "or saved_models/<model> for its newest version",
    )
    parser.add_argument("--output", required=True, help="a new or empty folder to publish into")
    parser.add_argument(
        "--encoders",
        help="comma-separated: image, text (default: every encoder the model has)",
    )
    return parser.parse_args(argv)


def describe(encoder) -> str:
    """One line on how to call a published encoder."""
    metadata = encoder.metadata
    inputs = ", ".join(
        f"{name} {card['dtype']} {card['shape']}" for name, card in metadata["inputs"].items()
    )
    if "input_range" in metadata:
        low, high = metadata["input_range"]
        inputs += f" in [{low:g}, {high:g}]"
    outputs = ", ".join(f"{name} {card['shape']}" for name, card in metadata["outputs"].items())
    return f"{inputs} -> {outputs}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from training.lean_import import import_tensorflow

    import_tensorflow()  # before the project's modules import it
    encoders = None
    if args.encoders is not None:
        encoders = tuple(name.strip() for name in args.encoders.split(",") if name.strip())
    from publishing.publish import publish_encoders

    try:
        published = publish_encoders(args.export_dir, args.output, encoders)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    model = published[0].metadata["model"]
    for encoder in published:
        print(f"published the {encoder.encoder} encoder of {model} to {encoder.path}")
        print(f"  {describe(encoder)}")
    flags = " ".join(encoder.train_flag for encoder in published)
    print(f"\nuse them with: python train.py --model NAME {flags}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
