"""Input pipeline speed beside the training speed it has to feed, in one run.

For each image size (64 and 224 px) the shapes world is generated as JPEG files and
converted to TFRecord shards, then, side by side:

- the machine's raw rate: `tf.io.decode_jpeg` alone over the same files, and our
  decode + resize (`datasets.images.preprocess_image`) over them;
- pipeline only: the default model's training dataset (`task.make_dataset`, with
  `--cache off` so that every epoch pays for reading and decoding), from files and
  from shards, examples per second with no model;
- training: `fit` of the default model (show_and_tell) on that live pipeline, on the
  default `--cache auto` pipeline after its first epoch, and on the same batches
  held in memory as tensors (the ceiling a pipeline can reach).

    python benchmarks/input_pipeline.py                       # 64 and 224 px
    python benchmarks/input_pipeline.py --sizes 64 --json results.json

Timings alternate and record the other processes' CPU share per block; medians leave
out busy blocks (benchmarks/rounds.py). The goals it checks: pipeline >= 5x what
training consumes; fit on the live pipeline >= 0.9x fit on tensors in memory;
decode + resize of JPEGs within 2x of the raw decode rate.
"""

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.lean_import import import_tensorflow  # noqa: E402  (after the path is set)

import_tensorflow()  # as train.py imports it: with oneDNN's kernels (training/onednn.py)
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.results_file import report  # noqa: E402
from benchmarks.rounds import alternate, summary  # noqa: E402
from datasets.cache_policy import should_cache  # noqa: E402
from datasets.images import preprocess_image  # noqa: E402
from datasets.shapes import ensure_shapes_world  # noqa: E402
from datasets.sources import read_caption_file  # noqa: E402
from datasets.tfrecords import read_shards, write_shards  # noqa: E402
from models import build_model, get_model_spec  # noqa: E402
from tasks import get_task  # noqa: E402
from tasks.options import TaskOptions  # noqa: E402

AUTOTUNE = tf.data.AUTOTUNE
GOALS = {
    "pipeline_over_training": 5.0,
    "live_over_tensors_fit": 0.9,
    "cache_auto_over_tensors_fit": 0.9,
    "decode_over_raw": 0.5,
}


def examples_per_second(dataset: tf.data.Dataset, count_of, warmup: int = 2) -> float:
    """Iterates `dataset` once; the rate after the first `warmup` elements."""
    iterator = iter(dataset)
    for _ in range(warmup):
        if next(iterator, None) is None:
            raise ValueError(f"too little data to time: {warmup} elements or fewer; add --images")
    examples, started = 0, time.perf_counter()
    for element in iterator:
        examples += count_of(element)
    return examples / (time.perf_counter() - started)


def image_rate(paths: list[str], decode, repeats: int) -> float:
    """Images per second that `decode` (bytes -> tensor) reaches over the files, in parallel."""
    dataset = tf.data.Dataset.from_tensor_slices(paths).repeat(repeats)
    dataset = dataset.map(lambda path: decode(tf.io.read_file(path)), num_parallel_calls=AUTOTUNE)
    dataset = dataset.map(lambda image: tf.reduce_mean(tf.cast(image, tf.float32)))
    return examples_per_second(dataset.batch(256).prefetch(AUTOTUNE), lambda batch: len(batch))


class StepTimer(keras.callbacks.Callback):
    """Seconds between the end of the first step and the end of the last (no tracing)."""

    def __init__(self):
        super().__init__()
        self.steps, self.started, self.ended = 0, 0.0, 0.0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps == 1:
            self.started = time.perf_counter()
        self.ended = time.perf_counter()


def fit_rate(model: keras.Model, dataset: tf.data.Dataset, batch_size: int) -> float:
    """Training examples per second of one `fit` epoch over `dataset`, first step excluded."""
    timer = StepTimer()
    model.fit(dataset, epochs=1, verbose=0, callbacks=[timer])
    return (timer.steps - 1) * batch_size / (timer.ended - timer.started)


def alternating_samples(measure, subjects: dict, rounds: int) -> dict[str, dict]:
    """`measure(subject)` for each subject once a round (`rounds.round_orders`), `rounds` times;
    per subject its summary (`rounds.summary`: median over the blocks the machine was
    quiet for, every sample, the other processes' CPU share in each block)."""
    blocks = alternate(measure, subjects, rounds)
    return {name: summary(blocks, name) for name in subjects}


def held_in_memory(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """The same batches as tensors in memory (read once here, not while timing)."""
    cached = dataset.cache()
    for _ in cached:
        pass
    return cached


def measure_size(
    size: int, images: int, steps: int, rounds: int, model_name: str, work: Path
) -> list[dict]:
    world = ensure_shapes_world(work / "worlds", image_size=size, counts={"train": images})
    files = read_caption_file(world / "captions_train.json")
    write_shards(files, work / f"shards-{size}")
    shards = read_shards(str(work / f"shards-{size}" / "train-*.tfrecord"))
    spec = get_model_spec(model_name)
    task = get_task(spec.task)
    options = TaskOptions(image_size=size, cache="off")
    vocabulary = task.build_vocabulary(files, options)
    model = build_model(spec, task.model_arguments(vocabulary, options), {})
    task.compile_model(model, 1e-3, options)

    paths = files.image_paths
    repeats = max(1, 4000 // len(paths))
    decode_samples = alternating_samples(
        lambda decode: image_rate(paths, decode, repeats),
        {
            "raw": lambda data: tf.io.decode_jpeg(data, channels=3),
            "ours": lambda data: preprocess_image(data, size),
        },
        rounds,
    )
    rows = []
    for source, examples in (("JPEG files", files), ("TFRecords", shards)):
        training = task.make_dataset(examples, vocabulary, options, training=True)
        pipeline = examples_per_second(training, lambda batch: int(tf.shape(batch[1])[0]))
        in_memory = held_in_memory(training.take(steps))
        fit_rate(model, in_memory.take(3), options.batch_size)  # trace the step once
        # The default (--cache auto) after its first epoch: decoded rows come from memory.
        default = task.make_dataset(
            examples, vocabulary, replace(options, cache="auto"), training=True
        )
        for _ in default:  # the first epoch fills the cache
            pass
        fit_samples = alternating_samples(
            lambda data: fit_rate(model, data, options.batch_size),
            {"live": training.take(steps), "tensors": in_memory, "auto": default.take(steps)},
            rounds,
        )
        figures = {**decode_samples, **fit_samples}
        medians = {name: figure["median"] for name, figure in figures.items()}
        live_fit, tensors_fit, default_fit = medians["live"], medians["tensors"], medians["auto"]
        raw, decoded = medians["raw"], medians["ours"]
        rows.append(
            {
                "image_size": size,
                "source": source,
                "raw_decode_jpeg_per_s": raw,
                "decode_resize_per_s": decoded,
                "pipeline_per_s": pipeline,
                "fit_live_per_s": live_fit,
                "fit_cache_auto_per_s": default_fit,
                "fit_tensors_per_s": tensors_fit,
                "pipeline_over_training": pipeline / live_fit,
                "live_over_tensors_fit": live_fit / tensors_fit,
                "cache_auto_over_tensors_fit": default_fit / tensors_fit,
                "decode_over_raw": decoded / raw,
                "images": len(paths),
                "rows": len(files.pairs()[0]),
                "model": model_name,
                "cache_auto_caches": should_cache("auto", len(files.pairs()[0]), size),
                "fit_steps": steps,
                "rounds": rounds,
                "samples_per_s": {
                    name: [round(v, 1) for v in figure["samples"]]
                    for name, figure in figures.items()
                },
                "others_cpu_share": {
                    name: figure["others_cpu_share"] for name, figure in figures.items()
                },
                "blocks_kept": {name: figure["blocks_kept"] for name, figure in figures.items()},
            }
        )
    return rows


def verdict(row: dict, key: str) -> str:
    return "yes" if row[key] >= GOALS[key] else "NO"


def format_rows(rows: list[dict]) -> str:
    lines = [
        "| image | source | raw decode_jpeg (img/s) | decode+resize (img/s) | pipeline, "
        "--cache off (ex/s) | fit: --cache off (ex/s) | fit: --cache auto, epoch 2+ (ex/s) "
        "| fit: tensors in memory (ex/s) | pipeline / training | off / tensors "
        "| auto / tensors | decode+resize / raw |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratios = " | ".join(
            f"{row[key]:.{1 if key == 'pipeline_over_training' else 2}f}"
            f"{'x' if key == 'pipeline_over_training' else ''} ({verdict(row, key)})"
            for key in GOALS
        )
        lines.append(
            f"| {row['image_size']} px | {row['source']} | {row['raw_decode_jpeg_per_s']:.0f} "
            f"| {row['decode_resize_per_s']:.0f} | {row['pipeline_per_s']:.0f} "
            f"| {row['fit_live_per_s']:.0f} | {row['fit_cache_auto_per_s']:.0f} "
            f"| {row['fit_tensors_per_s']:.0f} | {ratios} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--images", type=int, default=1000, help="training images per size")
    parser.add_argument(
        "--steps", type=int, nargs="+", default=[30, 10], help="fit steps timed, per size"
    )
    parser.add_argument("--rounds", type=int, default=5, help="alternations of each timing")
    parser.add_argument("--model", default="show_and_tell")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    steps_per_size = (args.steps * len(args.sizes))[: len(args.sizes)]
    keras.utils.set_random_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for size, steps in zip(args.sizes, steps_per_size, strict=True):
            rows += measure_size(size, args.images, steps, args.rounds, args.model, Path(work))
    report(format_rows(rows), rows, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
