"""Serving speed of every export beside the same model run in-process, in one run.

For each registered model (built untrained: speed does not depend on the weights,
on the shapes world's images and texts) the export is loaded back with
`tf.saved_model.load`, as TF Serving loads it, and its `serving_default`
signature is timed on raw requests: latency at batch 1 (p50, p99) and throughput at
batch 32. Beside it, in the same process, alternating:

- the in-process model: the serving module's own model function (beam search for
  captioners, the towers for retrieval, the classifier for labels) on images
  already decoded into tensors, at batch 32;
- decoding alone: `datasets.images.preprocess_image_batch` on the same 32 images.

Each subject's calls of one round are one block; blocks taken while other processes
kept the machine busy are left out (benchmarks/rounds.py; all kept if all were busy).
The goal: signature throughput at batch 32 >= 0.8x the throughput of the in-process
model plus decoding done separately (1 / (1/model + 1/decode)), so that the in-graph
preprocessing costs no more than doing it outside.

    python benchmarks/serving.py                        # every model
    python benchmarks/serving.py --models vqa dual_encoder --json results.json
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.lean_import import import_tensorflow  # noqa: E402  (after the path is set)

import_tensorflow()  # as train.py imports it: with oneDNN's kernels (training/onednn.py)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.results_file import report  # noqa: E402
from benchmarks.rounds import alternate  # noqa: E402
from datasets.images import preprocess_image_batch  # noqa: E402
from datasets.shapes import ensure_shapes_world  # noqa: E402
from datasets.sources import TASK_DATA  # noqa: E402
from models import build_model, get_model_spec, model_names  # noqa: E402
from serving.export import export_saved_model  # noqa: E402
from tasks import get_task  # noqa: E402
from tasks.options import TaskOptions  # noqa: E402

GOAL = 0.8
BATCH = 32


def seconds_per_call(call, repeats: int) -> list[float]:
    """Wall seconds of each of `repeats` calls, after one untimed call."""
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def in_process_call(module, task: str, images: tf.Tensor, texts: tf.Tensor):
    """The serving module's model work on decoded images, as its signature runs it, compiled
    into one tf.function like the signature (an eager baseline would flatter the export)."""
    if task == "captioning":
        work = tf.function(lambda image_batch, text_batch: module.generate(image_batch))
    elif task == "retrieval":  # cosines of the towers, or the joint scorer of pairs
        work = tf.function(
            lambda image_batch, text_batch: module.aligned_scores(
                module.embed_images(image_batch), module.embed_texts_inline(text_batch)
            )
        )
    else:
        work = tf.function(module.probabilities)
    return lambda: work(images, texts)


def measure_model(name: str, world: Path, work: Path, rounds: int, repeats: int) -> dict:
    keras.utils.set_random_seed(0)
    spec = get_model_spec(name)
    task = get_task(spec.task)
    options = TaskOptions()
    train = TASK_DATA[spec.task].read_shapes(world, "train")
    vocabulary = task.build_vocabulary(train, options)
    model = build_model(spec, task.model_arguments(vocabulary, options), {})
    module = task.serving_module(model, vocabulary, options)
    version_dir = export_saved_model(module, work / name)
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]

    texts = train.captions if hasattr(train, "captions") else train.texts
    texts = [text[0] if isinstance(text, list) else text for text in texts[:BATCH]]
    image_bytes = tf.constant([Path(path).read_bytes() for path in train.image_paths[:BATCH]])
    text_batch = tf.constant(texts)
    inputs = signature.structured_input_signature[1]

    def request(size: int) -> dict:
        return {
            key: image_bytes[:size] if key == "image_bytes" else text_batch[:size] for key in inputs
        }

    one, full = request(1), request(BATCH)
    decode = tf.function(lambda data: preprocess_image_batch(data, options.image_size))
    decoded = decode(image_bytes)
    calls = {
        "signature_batch_1": lambda: signature(**one),
        "signature_batch_32": lambda: signature(**full),
        "in_process_model_batch_32": in_process_call(module, spec.task, decoded, text_batch),
        "decode_batch_32": lambda: decode(image_bytes),
    }
    # Each subject once a round (rounds.round_orders); a block is its `repeats` calls.
    blocks = alternate(lambda call: seconds_per_call(call, repeats), calls, rounds)
    samples, loads = {}, {}
    for key in calls:
        own = [block for block in blocks if block.subject == key]
        quiet = [block for block in own if not block.busy()] or own  # all busy: keep all
        samples[key] = [seconds for block in quiet for seconds in block.value]
        loads[key] = [block.others_cpu_share for block in own]
    latency = np.asarray(samples["signature_batch_1"]) * 1000
    per_second = {
        key: BATCH / statistics.median(times) for key, times in samples.items() if "32" in key
    }
    separate = 1 / (1 / per_second["in_process_model_batch_32"] + 1 / per_second["decode_batch_32"])
    return {
        "model": name,
        "task": spec.task,
        "p50_ms_batch_1": float(np.percentile(latency, 50)),
        "p99_ms_batch_1": float(np.percentile(latency, 99)),
        "signature_per_s_batch_32": per_second["signature_batch_32"],
        "in_process_model_per_s_batch_32": per_second["in_process_model_batch_32"],
        "decode_per_s_batch_32": per_second["decode_batch_32"],
        "model_plus_decode_per_s": separate,
        "signature_over_separate": per_second["signature_batch_32"] / separate,
        "rounds": rounds,
        "calls_per_round": repeats,
        "others_cpu_share": loads,
        "blocks_kept": {
            key: sum(1 for b in blocks if b.subject == key and not b.busy()) or rounds
            for key in calls
        },
    }


def format_rows(rows: list[dict]) -> str:
    lines = [
        "| model | p50 ms (batch 1) | p99 ms (batch 1) | signature ex/s (batch 32) "
        "| in-process model ex/s | decode alone ex/s | model + decode ex/s "
        "| signature / (model + decode) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        met = "yes" if row["signature_over_separate"] >= GOAL else "NO"
        lines.append(
            f"| `{row['model']}` | {row['p50_ms_batch_1']:.1f} | {row['p99_ms_batch_1']:.1f} "
            f"| {row['signature_per_s_batch_32']:.0f} "
            f"| {row['in_process_model_per_s_batch_32']:.0f} "
            f"| {row['decode_per_s_batch_32']:.0f} | {row['model_plus_decode_per_s']:.0f} "
            f"| {row['signature_over_separate']:.2f} ({met}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=model_names(), choices=model_names())
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the timings")
    parser.add_argument("--repeats", type=int, default=10, help="calls per timing and round")
    parser.add_argument("--images", type=int, default=64, help="training images to build from")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        world = ensure_shapes_world(
            Path(work) / "world", counts={"train": max(args.images, BATCH), "val": 1, "test": 1}
        )
        for name in args.models:
            rows.append(measure_model(name, world, Path(work), args.rounds, args.repeats))
    report(format_rows(rows), rows, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
