"""Training speed of our models under KERAS_BACKEND=jax, beside the device's matmul peak.

For the machine without TensorFlow that the `device` tool lends (a GPU with JAX):
dual_encoder, show_and_tell and vqa at their default sizes (64 px, 32 tokens, batch
64, the default shapes world's vocabulary and answers, as benchmarks/frameworks.py's
rows record them) train with train.py's compile settings (`training.compiling`) on
random batches of those shapes, alternating with a float32 matmul (`--peak-size`,
2048 on a CPU, 8192 on a GPU; at JAX's default precision, as the models run, which is
TF32 on NVIDIA GPUs since Ampere) that measures the device's peak, `--rounds` times
in a seeded shuffled order (benchmarks/rounds.py). Each block runs `--steps` steps of
`model.fit` and is timed from training callbacks, from the end of its first step to
the end of its last (Keras waits for each step's logs before it calls them). FLOPs
per example are XLA's own count (`cost_analysis`) of the forward and backward pass's
HLO (or, where a GPU plugin gives none, of the compiled one), so each figure is also
achieved TFLOP/s and a fraction of the peak; where XLA counts nothing, those stay
empty.

    KERAS_BACKEND=jax python benchmarks/jax_speed.py --json jax.json
    KERAS_BACKEND=jax python benchmarks/jax_speed.py --models vqa --rounds 5

Neither TensorFlow nor PyTorch is imported.
"""

import argparse
import os
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # Keras reads the backend at its import
    os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402  (after the backend is chosen)
import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.results_file import report  # noqa: E402
from benchmarks.rounds import alternate, summary  # noqa: E402
from benchmarks.steps_timer import StepsTimer  # noqa: E402
from benchmarks.training_flags import add_training_flags  # noqa: E402
from models import build_model, get_model_spec  # noqa: E402
from training.compiling import compile_for_task  # noqa: E402

MODELS = ("dual_encoder", "show_and_tell", "vqa")
# The default shapes world's sizes (benchmarks/results/benchmarks.json's rows; a test
# checks that they still agree).
WORLD_SIZES = {
    "dual_encoder": {"vocabulary_size": 40},
    "show_and_tell": {"vocabulary_size": 40},
    "vqa": {"vocabulary_size": 33, "num_classes": 23},
}
IMAGE_SIZE, SEQUENCE_LENGTH = 64, 32
REAL_TOKENS = 12  # a shapes caption or question: the rest of the row is padding


def random_batch(task: str, arguments: dict, batch_size: int, rng: np.random.Generator):
    """(inputs, targets, weights or None) of the shapes train.py's pipeline feeds `task`."""
    size, length = arguments["image_size"], arguments["sequence_length"]
    vocabulary = arguments["vocabulary_size"]
    tokens = rng.integers(4, vocabulary, (batch_size, length)).astype("int32")
    tokens[:, min(REAL_TOKENS, length - 1) :] = 0
    images = rng.random((batch_size, size, size, 3), dtype=np.float32)
    if task == "captioning":  # teacher forcing: the next tokens, padding weighted out
        targets = tokens[:, 1:]
        return {"image": images, "tokens": tokens[:, :-1]}, targets, (targets != 0) * 1.0
    if task == "retrieval":  # in-batch contrastive: the targets are not read
        return {"image": images, "tokens": tokens}, np.zeros(batch_size, "float32"), None
    labels = rng.integers(0, arguments["num_classes"], batch_size).astype("int32")
    return {"image": images, "tokens": tokens}, labels, None


def matmul_flops(size: int, repeats: int = 10) -> float:
    """FLOP/s of a float32 [size, size] @ [size, size] on JAX's default device, at JAX's
    default matmul precision (as the models run: TF32 on NVIDIA GPUs since Ampere)."""
    keys = jax.random.split(jax.random.PRNGKey(0))
    a, b = (jax.random.uniform(key, (size, size), dtype="float32") for key in keys)
    multiply = jax.jit(lambda x, y: x @ y)
    multiply(a, b).block_until_ready()
    started = time.perf_counter()
    for _ in range(repeats):
        result = multiply(a, b)
    result.block_until_ready()
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def training_flops(model: keras.Model, batch) -> float | None:
    """XLA's FLOP count of one forward and backward pass over `batch`, or None."""
    inputs, targets, weights = batch
    non_trainable = [variable.value for variable in model.non_trainable_variables]

    def gradients(trainable):
        def loss(trainable):
            outputs, _ = model.stateless_call(trainable, non_trainable, inputs, training=True)
            return model.loss(targets, outputs, sample_weight=weights)

        return jax.grad(loss)(trainable)

    trainable = [variable.value for variable in model.trainable_variables]
    return counted_flops(jax.jit(gradients).lower(trainable))


def counted_flops(lowered) -> float | None:
    """The FLOPs XLA counts in a lowered computation: in its HLO, else after compiling
    (GPU plugins answer None for the former), else None."""
    for analysis in (lowered.cost_analysis, lambda: lowered.compile().cost_analysis()):
        cost = analysis()
        if isinstance(cost, list):  # older JAX: one dict per computation
            cost = cost[0] if cost else None
        if cost and cost.get("flops"):
            return float(cost["flops"])
    return None


def measure_model(name: str, args) -> dict:
    keras.utils.set_random_seed(0)
    spec = get_model_spec(name)
    arguments = {"image_size": args.image_size, "sequence_length": SEQUENCE_LENGTH}
    arguments |= WORLD_SIZES[name]
    model = build_model(spec, arguments, {})
    learning_rate = spec.training_defaults["learning_rate"]
    compile_for_task(spec.task, model, learning_rate)
    rng = np.random.default_rng(0)
    held = [random_batch(spec.task, arguments, args.batch_size, rng) for _ in range(args.batches)]
    repeat = [held[step % len(held)] for step in range(args.steps)]
    inputs = {key: np.concatenate([batch[0][key] for batch in repeat]) for key in held[0][0]}
    targets = np.concatenate([batch[1] for batch in repeat])
    weights = None if held[0][2] is None else np.concatenate([batch[2] for batch in repeat])
    fit = {"batch_size": args.batch_size, "epochs": 1, "verbose": 0, "shuffle": False}
    model.fit(inputs, targets, sample_weight=weights, **fit)  # compiles
    counted = training_flops(model, held[0])  # before the rounds: a failure costs no blocks
    flops = None if counted is None else counted / args.batch_size

    def ours():
        # Keras turns each step's logs into floats for this (not async-safe) callback:
        # that waits for the step, whose loss comes out with its updated weights.
        timer = StepsTimer()
        model.fit(inputs, targets, sample_weight=weights, callbacks=[timer], **fit)
        return timer.examples_per_second(args.batch_size)

    subjects = {"ours_jax": ours, "peak_matmul": lambda: matmul_flops(args.peak_size)}
    progress = lambda line: print(f"{name}: {line}", file=sys.stderr, flush=True)  # noqa: E731
    blocks = alternate(lambda measure: measure(), subjects, args.rounds, progress)
    figures = {subject: summary(blocks, subject) for subject in subjects}
    rate, peak = figures["ours_jax"]["median"], figures["peak_matmul"]["median"]
    return {
        "benchmark": "training_jax",
        "model": name,
        "batch_size": args.batch_size,
        "steps_per_block": args.steps,
        "rounds": args.rounds,
        "image_size": args.image_size,
        **WORLD_SIZES[name],
        "parameters": model.count_params(),
        "training_flops_per_example": flops,
        "per_s": rate,
        "tflops": None if flops is None else rate * flops / 1e12,
        "peak_tflops": peak / 1e12,
        "peak_size": args.peak_size,
        "of_peak": None if flops is None else rate * flops / peak,
        "figures": figures,
    }


def device_description() -> dict:
    device = jax.devices()[0]
    return {
        "platform": device.platform,
        "kind": device.device_kind,
        "jax": jax.__version__,
        "matmul_precision": jax.config.jax_default_matmul_precision or "default",
    }


def format_rows(rows: list[dict], device: dict) -> str:
    lines = [
        f"JAX {device['jax']} on {device['kind']} ({device['platform']}); peak: float32 "
        f"{rows[0]['peak_size']}x{rows[0]['peak_size']} matmul at JAX's "
        f"{device['matmul_precision']} precision (TF32 on NVIDIA GPUs since Ampere), "
        f"{np.median([row['peak_tflops'] for row in rows]):.2f} TFLOP/s.",
        "",
        "| model | ex/s (range) | GFLOP per example | TFLOP/s | of peak |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        figure = row["figures"]["ours_jax"]
        counted = row["training_flops_per_example"] is not None
        flop_cells = (
            f"{row['training_flops_per_example'] / 1e9:.4f} | {row['tflops']:.2f} "
            f"| {row['of_peak']:.1%}"
            if counted
            else "not counted | - | -"
        )
        lines.append(
            f"| `{row['model']}` (training, batch {row['batch_size']}) "
            f"| {figure['median']:.0f} ({figure['min']:.0f}-{figure['max']:.0f}) "
            f"| {flop_cells} |"
        )
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_training_flags(parser, MODELS)
    parser.add_argument("--image-size", type=int, default=IMAGE_SIZE)
    parser.add_argument("--peak-size", type=int, help="default: 8192 on a GPU, else 2048")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if keras.backend.backend() != "jax":
        raise SystemExit(f"KERAS_BACKEND={keras.backend.backend()}: this benchmark needs jax.")
    device = device_description()
    if args.peak_size is None:
        args.peak_size = 8192 if device["platform"] == "gpu" else 2048
    rows = [measure_model(name, args) for name in args.models]
    for row in rows:
        row["device"] = device
    report(format_rows(rows, device), rows, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
