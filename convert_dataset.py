"""Convert any dataset train.py reads into sharded TFRecords (images kept encoded).

python convert_dataset.py --task captioning --dataset captions.json --output shards/
python convert_dataset.py --task vqa --dataset shapes --output shards/   # train, val and test
python convert_dataset.py --task retrieval --dataset tfds:coco_captions --split val --output out/
python convert_dataset.py --verify shards/        # sizes and sha256 against manifest.json

Then train from the shards: python train.py --model NAME --dataset 'shards/train-*.tfrecord'
(--val-dataset 'shards/val-*.tfrecord').
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# TensorFlow first (the flags' modules import it), without its unused optional imports.
from training.lean_import import import_tensorflow  # noqa: E402

import_tensorflow()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from datasets.tfrecords import DEFAULT_SHARD_MEGABYTES
    from models.registry import TASKS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=TASKS, help="which fields to read and store")
    parser.add_argument("--dataset", help="any --dataset SPEC of train.py")
    parser.add_argument("--image-dir", help="folder the dataset's image names are relative to")
    parser.add_argument("--tfds-data-dir", help="where tfds: datasets are prepared")
    parser.add_argument(
        "--split",
        default="train",
        help="shard name prefix, and which split of a tfds: dataset (train, val, test)",
    )
    parser.add_argument("--output", help="folder for the shards and manifest.json")
    parser.add_argument(
        "--shard-megabytes",
        type=float,
        default=DEFAULT_SHARD_MEGABYTES,
        help="start a new shard past this size",
    )
    parser.add_argument(
        "--on-bad-example",
        default="skip",
        choices=("skip", "error"),
        help="a missing, unreadable or oversized image, an empty text or a malformed row: "
        "leave it out (every one is reported) or stop at the first, as train.py does",
    )
    parser.add_argument("--verify", metavar="DIR", help="check DIR's shards against its manifest")
    args = parser.parse_args(argv)
    if not args.verify and not (args.task and args.dataset and args.output):
        parser.error("--task, --dataset and --output are required (or --verify DIR)")
    if args.shard_megabytes <= 0:
        parser.error(f"--shard-megabytes must be > 0, got {args.shard_megabytes}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from datasets.checked_splits import checked_split
    from datasets.shapes import ensure_shapes_world
    from datasets.sources import TASK_DATA, parse_shapes_spec, read_dataset
    from datasets.tfrecords import verify_shards, write_shards

    if args.verify:
        problems = verify_shards(args.verify)
        print("\n".join(problems) if problems else f"{args.verify}: every shard matches")
        return 1 if problems else 0
    data = TASK_DATA[args.task]
    counts = parse_shapes_spec(args.dataset)
    try:
        if counts is not None:
            root = ensure_shapes_world(counts=counts)
            splits = {split: data.read_shapes(root, split) for split in counts}
        else:
            examples = read_dataset(
                args.task,
                args.dataset,
                args.split,
                image_dir=args.image_dir,
                tfds_data_dir=args.tfds_data_dir,
            )
            splits = {args.split: examples}
        for split, examples in splits.items():
            examples = checked_split(examples, args.on_bad_example)
            entry = write_shards(
                examples, args.output, split=split, shard_megabytes=args.shard_megabytes
            )
            print(
                f"{split}: {entry['images']} images, {entry['rows']} texts -> "
                f"{len(entry['shards'])} shard(s) in {args.output}"
            )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
