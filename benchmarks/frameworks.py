"""Training speed of our Keras models beside PyTorch twins and beside the machine's peak.

For dual_encoder, show_and_tell and vqa at their default sizes (64 px, 32 tokens,
batch 64, the shapes world's vocabulary and answers) this trains, alternating
(each once a round, in a seeded shuffled order after the first, `--rounds` times):

- ours through train.py's loop (`training.Trainer`, what `python train.py` runs),
- ours through `model.fit`,
- the PyTorch twin (benchmarks/torch_twins.py) eagerly in NCHW and in channels_last
  memory format (the better of the two is PyTorch's figure),
- a 2048 x 2048 float32 matmul in TensorFlow: this machine's peak GFLOP/s.

Every training block runs `--steps` steps on the same batches held in memory and is
timed from training callbacks (`on_train_batch_end`): from the end of its first step
to the end of its last, so tracing, first allocations, the epoch-end metric pass and
the loop's teardown are left out; never by process wall time. Both frameworks run on
the same number of threads. The model's training FLOPs per example are counted by
`tf.profiler` on the graph of one forward and backward pass (and, as a check, by
`torch.utils.flop_counter` on the twin), so each figure is also achieved GFLOP/s
and a fraction of the measured peak. Inference at batch 32 of the image encoder and
of the text tower (dual_encoder's towers, compiled) is measured the same way, beside
the twin's towers in eval mode under `torch.inference_mode` (the image tower in both
memory formats, the better one counting).

Blocks taken while other processes used more than `rounds.BUSY_SHARE` of the CPUs
are left out of the medians (all kept and flagged when every block was busy).

    python benchmarks/frameworks.py                      # the three models
    python benchmarks/frameworks.py --models vqa --rounds 5 --json results.json
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.lean_import import import_tensorflow  # noqa: E402  (after the path is set)

import_tensorflow()  # as train.py imports it: with oneDNN's kernels (training/onednn.py)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.results_file import report  # noqa: E402
from benchmarks.rounds import alternate, round_ratios, summary  # noqa: E402
from benchmarks.steps_timer import StepsTimer  # noqa: E402
from benchmarks.training_flags import add_training_flags  # noqa: E402
from datasets.shapes import ensure_shapes_world  # noqa: E402
from datasets.sources import TASK_DATA  # noqa: E402
from layers.projected_input_lstm import batch_halves_while_tracing  # noqa: E402
from models import build_model, get_model_spec  # noqa: E402
from tasks import get_task  # noqa: E402
from tasks.options import TaskOptions  # noqa: E402
from training.loop import Trainer  # noqa: E402

MODELS = ("dual_encoder", "show_and_tell", "vqa")
GOALS = {"ours_over_torch": 1.0, "defect_below": 0.9, "conv_training_of_peak": 0.4}
INFERENCE_GOALS = {"image_encoder": 0.6, "text_encoder": 0.2}
PEAK_SIZE = 2048
INFERENCE_BATCH = 32


def torch_or_reason():
    """(torch module, None), or (None, why it cannot be used)."""
    try:
        import torch
    except ImportError as error:
        return None, f"torch is not installed ({error}); pip install -r benchmarks/requirements.txt"
    return torch, None


def set_threads(threads: int, torch) -> None:
    """The same thread count for TensorFlow (before it starts) and PyTorch."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already runs in this process (a test session)
        print(f"TensorFlow was already initialised: its thread pools stay, not {threads}")
    if torch is not None:
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:  # already set in this process
            pass


def matmul_gflops(size: int = PEAK_SIZE, repeats: int = 10) -> float:
    """float32 [size, size] @ [size, size] in TensorFlow, GFLOP/s over `repeats` calls."""
    a = tf.random.uniform((size, size))
    b = tf.random.uniform((size, size))
    multiply = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
    multiply(a, b).numpy()
    started = time.perf_counter()
    for _ in range(repeats):
        result = multiply(a, b)
    result.numpy()
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def graph_flops(function, *arguments) -> int:
    """Float operations `tf.profiler` counts in the graph of `function(*arguments)`."""
    graph = tf.function(function).get_concrete_function(*arguments).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops


def model_data(name: str, world: Path, batch_size: int, batches: int):
    """(spec, task, options, model arguments, [(inputs, targets, weights or None)] numpy)."""
    spec = get_model_spec(name)
    task = get_task(spec.task)
    options = TaskOptions(batch_size=batch_size, cache="off")
    train = TASK_DATA[spec.task].read_shapes(world, "train")
    vocabulary = task.build_vocabulary(train, options)
    arguments = task.model_arguments(vocabulary, options)
    dataset = task.make_dataset(train, vocabulary, options, training=True)
    held = []
    for element in dataset.take(batches):
        inputs, targets, *rest = element
        held.append(
            (
                {key: value.numpy() for key, value in inputs.items()},
                targets.numpy(),
                rest[0].numpy() if rest else None,
            )
        )
    if len(held) < batches:
        raise ValueError(f"{name}: the world gave {len(held)} batches, {batches} needed")
    return spec, task, options, arguments, held


def keras_dataset(held, steps: int) -> tf.data.Dataset:
    elements = [(x, y) if w is None else (x, y, w) for x, y, w in held]
    stacked = tf.nest.map_structure(lambda *parts: np.stack(parts), *elements)
    return tf.data.Dataset.from_tensor_slices(stacked).repeat().take(steps).prefetch(2)


def training_flops(model: keras.Model, held) -> int:
    """FLOPs of one forward and backward pass over the first batch (tf.profiler)."""
    inputs, targets, weights = held[0]
    loss_function = model.loss

    def step(x, y, w):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = loss_function(y, logits, sample_weight=w)
        return tape.gradient(loss, model.trainable_variables)

    specs = [
        {key: tf.TensorSpec(value.shape, value.dtype) for key, value in inputs.items()},
        tf.TensorSpec(targets.shape, targets.dtype),
        None if weights is None else tf.TensorSpec(weights.shape, weights.dtype),
    ]
    return graph_flops(step, *specs)


def torch_subjects(torch, name, arguments, held, learning_rate, steps):
    """{format name: callable(steps) -> examples/s} for the twin in NCHW and channels_last."""
    from benchmarks.torch_twins import TwinTrainer, build_twin

    subjects, flops = {}, None
    for memory_format in ("nchw", "channels_last"):
        torch.manual_seed(0)
        twin = build_twin(name, arguments["vocabulary_size"], arguments.get("num_classes"))
        layout = torch.channels_last if memory_format == "channels_last" else None
        if layout is not None:
            twin = twin.to(memory_format=layout)
        batches = []
        for inputs, targets, weights in held:
            batches.append(
                (
                    torch_images(torch, inputs["image"], layout),
                    torch.from_numpy(inputs["tokens"]).long(),
                    torch.from_numpy(targets).long(),
                    None if weights is None else torch.from_numpy(weights),
                )
            )
        trainer = TwinTrainer(twin, learning_rate, accuracy=name != "dual_encoder")
        if flops is None:
            flops = twin_flops(torch, trainer, batches[0])

        def run(steps=steps, trainer=trainer, batches=batches):
            started = None
            for index in range(steps):
                trainer.step(*batches[index % len(batches)])
                if index == 0:
                    started = time.perf_counter()
            return (steps - 1) * batches[0][0].shape[0] / (time.perf_counter() - started)

        subjects[f"torch_{memory_format}"] = run
    return subjects, flops


def torch_images(torch, images, layout):
    """NHWC numpy images as the twins' NCHW tensor, in `layout` (None: contiguous NCHW)."""
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2)
    return tensor.contiguous(memory_format=layout or torch.contiguous_format)


def examples_per_second(call, calls: int, batch_size: int, finish=None) -> float:
    """`call()` `calls` times; `finish` (if given) waits for the last result."""
    started = time.perf_counter()
    for _ in range(calls):
        result = call()
    if finish is not None:
        finish(result)
    return calls * batch_size / (time.perf_counter() - started)


def torch_inference_subjects(torch, arguments, inputs, calls: int):
    """The dual_encoder twin's towers in eval mode under `torch.inference_mode`: the image
    tower in NCHW and channels_last, the text tower once. Returns ({subject: callable() ->
    examples/s}, {tower: [its subjects]})."""
    from benchmarks.torch_twins import build_twin

    tokens = torch.from_numpy(inputs["tokens"]).long()
    subjects, towers = {}, {"image_encoder": [], "text_encoder": []}

    def rate(tower_call, batch):
        def run():
            with torch.inference_mode():
                return examples_per_second(lambda: tower_call(batch), calls, INFERENCE_BATCH)

        with torch.inference_mode():
            tower_call(batch)  # oneDNN builds its primitives on the first call
        return run

    for memory_format in ("nchw", "channels_last"):
        torch.manual_seed(0)
        twin = build_twin("dual_encoder", arguments["vocabulary_size"]).eval()
        layout = torch.channels_last if memory_format == "channels_last" else None
        if layout is not None:
            twin = twin.to(memory_format=layout)
        name = f"torch_image_encoder_{memory_format}"
        subjects[name] = rate(twin.encode_image, torch_images(torch, inputs["image"], layout))
        towers["image_encoder"].append(name)
        if layout is None:  # the text tower has no image layout to choose
            subjects["torch_text_encoder"] = rate(twin.encode_text, tokens)
            towers["text_encoder"].append("torch_text_encoder")
    return subjects, towers


def twin_flops(torch, trainer, batch) -> int | None:
    """FLOPs of one forward and backward pass of the twin (torch.utils.flop_counter:
    matmuls and convolutions only), or None where that counter is missing."""
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return None
    images, tokens, targets, weights = batch
    with FlopCounterMode(display=False) as counter:
        logits = trainer.model(images, tokens)
        trainer.model.loss(logits, targets, weights).backward()
    trainer.model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def progress(label: str):
    return lambda line: print(f"{label}: {line}", file=sys.stderr, flush=True)


def measure_model(name, world, args, torch, torch_reason) -> dict:
    keras.utils.set_random_seed(0)
    spec, task, options, arguments, held = model_data(name, world, args.batch_size, args.batches)
    learning_rate = spec.training_defaults["learning_rate"]
    model = build_model(spec, arguments, {})
    task.compile_model(model, learning_rate, options)
    dataset = keras_dataset(held, args.steps)

    def ours_trainer():
        timer = StepsTimer()
        Trainer(model, callbacks=[timer], print_fn=lambda message: None).fit(dataset, epochs=1)
        return timer.examples_per_second(args.batch_size)

    def ours_fit():
        timer = StepsTimer()
        model.fit(dataset, epochs=1, verbose=0, callbacks=[timer])
        return timer.examples_per_second(args.batch_size)

    subjects = {"ours_trainer": ours_trainer, "ours_fit": ours_fit}
    torch_flops = None
    if torch is not None:
        twins, torch_flops = torch_subjects(torch, name, arguments, held, learning_rate, args.steps)
        subjects.update(twins)
    subjects["peak_matmul"] = matmul_gflops
    blocks = alternate(lambda measure: measure(), subjects, args.rounds, progress(name))
    figures = {subject: summary(blocks, subject) for subject in subjects}
    flops = training_flops(model, held) / args.batch_size
    peak = figures["peak_matmul"]["median"]
    row = {
        "benchmark": "training",
        "model": name,
        "batch_size": args.batch_size,
        "steps_per_block": args.steps,
        "rounds": args.rounds,
        "threads": args.threads,
        "vocabulary_size": arguments["vocabulary_size"],
        "num_classes": arguments.get("num_classes"),
        "parameters": model.count_params(),
        "training_flops_per_example": flops,
        "torch_counted_flops_per_example": None
        if torch_flops is None
        else torch_flops / args.batch_size,
        "figures": figures,
        "peak_gflops": peak,
        "torch_skipped": torch_reason,
    }
    for subject in ("ours_trainer", "ours_fit"):
        rate = figures[subject]["median"]
        row[f"{subject}_per_s"] = rate
        row[f"{subject}_gflops"] = rate * flops / 1e9
        row[f"{subject}_of_peak"] = rate * flops / 1e9 / peak
    if torch is not None:
        best = max(("torch_nchw", "torch_channels_last"), key=lambda s: figures[s]["median"])
        row["torch_format"] = best
        row["torch_per_s"] = figures[best]["median"]
        row["torch_gflops"] = row["torch_per_s"] * flops / 1e9
        row["ours_over_torch"] = row["ours_trainer_per_s"] / row["torch_per_s"]
        row["ours_over_torch_per_round"] = round_ratios(blocks, "ours_trainer", best)
        row["fit_over_torch"] = row["ours_fit_per_s"] / row["torch_per_s"]
    return row


def measure_inference(world, args, torch=None, torch_reason=None) -> list[dict]:
    """dual_encoder's image and text towers at batch 32, compiled, beside their PyTorch
    twins' and the peak."""
    _, _, _, arguments, held = model_data("dual_encoder", world, INFERENCE_BATCH, 1)
    model = build_model(get_model_spec("dual_encoder"), arguments, {})
    inputs = held[0][0]
    towers = {
        "image_encoder": (model.get_layer("image_encoder"), tf.constant(inputs["image"])),
        "text_encoder": (model.get_layer("text_encoder"), tf.constant(inputs["tokens"])),
    }
    calls, flops = {}, {}
    for tower, (layer, batch) in towers.items():
        forward = tf.function(lambda data, layer=layer: layer(data, training=False))
        # Traced (and counted) as the export's encode_text and encode_image run each
        # tower: alone.
        with batch_halves_while_tracing():
            forward(batch)
            flops[tower] = graph_flops(lambda data, layer=layer: layer(data, training=False), batch)
        calls[tower] = lambda forward=forward, batch=batch: examples_per_second(
            lambda: forward(batch), args.inference_calls, INFERENCE_BATCH, finish=np.asarray
        )
    twin_towers = {}
    if torch is not None:
        twin_calls, twin_towers = torch_inference_subjects(
            torch, arguments, inputs, args.inference_calls
        )
        calls.update(twin_calls)
    calls["peak_matmul"] = matmul_gflops
    blocks = alternate(lambda measure: measure(), calls, args.rounds, progress("inference"))
    figures = {subject: summary(blocks, subject) for subject in calls}
    peak = figures["peak_matmul"]["median"]
    rows = []
    for tower in towers:
        per_example = flops[tower] / INFERENCE_BATCH
        rate = figures[tower]["median"]
        row = {
            "benchmark": "inference",
            "model": f"dual_encoder {tower}",
            "tower": tower,
            "batch_size": INFERENCE_BATCH,
            "per_s": rate,
            "flops_per_example": per_example,
            "gflops": rate * per_example / 1e9,
            "of_peak": rate * per_example / 1e9 / peak,
            "goal_of_peak": INFERENCE_GOALS[tower],
            "peak_gflops": peak,
            "figures": {tower: figures[tower], "peak_matmul": figures["peak_matmul"]},
        }
        if torch is None:
            row["torch_skipped"] = torch_reason
        else:
            twins = twin_towers[tower]
            best = max(twins, key=lambda subject: figures[subject]["median"])
            row["figures"].update({subject: figures[subject] for subject in twins})
            row["torch_format"] = best
            row["torch_per_s"] = figures[best]["median"]
            row["ours_over_torch"] = rate / row["torch_per_s"]
            row["ours_over_torch_per_round"] = round_ratios(blocks, tower, best)
        rows.append(row)
    return rows


def busy_note(figures: dict) -> str:
    kept = sum(figure["blocks_kept"] for figure in figures.values())
    total = sum(figure["blocks"] for figure in figures.values())
    shares = [f["others_cpu_share_max"] for f in figures.values() if f["others_cpu_share_max"]]
    worst = f", others up to {max(shares):.0%} of the CPUs" if shares else ""
    flag = " (all busy)" if any(figure["all_busy"] for figure in figures.values()) else ""
    return f"{kept}/{total}{flag}{worst}"


def spread(figure: dict) -> str:
    return f"{figure['median']:.0f} ({figure['min']:.0f}-{figure['max']:.0f})"


def layout_of(subject: str) -> str:
    """The memory format a PyTorch subject ran in ("" for one without images)."""
    return next((f for f in ("channels_last", "nchw") if subject.endswith(f)), "")


def goal_verdict(of_peak: float, goal: float) -> str:
    """Judged on the unrounded fraction: 19.8% is under a 20% goal."""
    return f"goal {goal:.0%}: " + ("met" if of_peak >= goal else "NOT met")


def torch_cells(row: dict, ours: str) -> tuple[str, str]:
    """The PyTorch and ours / PyTorch cells of a row, `ours` naming our subject."""
    if "torch_per_s" not in row:
        return "skipped", "-"
    figures, subject = row["figures"], row["torch_format"]
    layout = layout_of(subject)
    torch_cell = spread(figures[subject]) + (f" ({layout})" if layout else "")
    ratio = row["ours_over_torch"]
    verdict = (
        "yes"
        if ratio >= GOALS["ours_over_torch"]
        else ("DEFECT" if ratio < GOALS["defect_below"] else "NO")
    )
    if figures[ours]["all_busy"] or figures[subject]["all_busy"]:
        verdict = "not judged: only busy blocks"
    per_round = row.get("ours_over_torch_per_round")
    if per_round and len(per_round) > 1:
        verdict += f"; rounds {min(per_round):.2f}-{max(per_round):.2f}"
    return torch_cell, f"{ratio:.2f} ({verdict})"


def format_rows(rows: list[dict]) -> str:
    lines = [
        "| model | ours: Trainer ex/s | ours: fit ex/s | PyTorch ex/s (format) "
        "| ours / PyTorch | GFLOP per example | ours GFLOP/s | of peak | blocks kept |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        figures = row["figures"]
        if row["benchmark"] == "inference":
            torch_cell, ratio_cell = torch_cells(row, row["tower"])
            lines.append(
                f"| {row['model']} (inference, batch {row['batch_size']}) "
                f"| {spread(figures[row['tower']])} | | {torch_cell} | {ratio_cell} "
                f"| {row['flops_per_example'] / 1e9:.4f} | {row['gflops']:.1f} "
                f"| {row['of_peak']:.1%} ({goal_verdict(row['of_peak'], row['goal_of_peak'])}) "
                f"| {busy_note(figures)} |"
            )
            continue
        torch_cell, ratio_cell = torch_cells(row, "ours_trainer")
        if "fit_over_torch" in row:
            ratio_cell += f"; fit {row['fit_over_torch']:.2f}"
        lines.append(
            f"| `{row['model']}` (training, batch {row['batch_size']}) "
            f"| {spread(figures['ours_trainer'])} | {spread(figures['ours_fit'])} "
            f"| {torch_cell} | {ratio_cell} | {row['training_flops_per_example'] / 1e9:.4f} "
            f"| {row['ours_trainer_gflops']:.1f} | {row['ours_trainer_of_peak']:.0%} "
            f"| {busy_note(figures)} |"
        )
    peaks = [row["peak_gflops"] for row in rows]
    lines.append("")
    lines.append(
        f"Peak: float32 {PEAK_SIZE}x{PEAK_SIZE} matmul in TensorFlow, median "
        f"{np.median(peaks):.1f} GFLOP/s ({rows[0]['threads'] if 'threads' in rows[0] else ''}"
        " threads)."
    )
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_training_flags(parser, MODELS)
    # 100 calls make blocks of about 1 s; 20 (0.2 s) spread 3000-4300 examples/s.
    parser.add_argument("--inference-calls", type=int, default=100)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--images", type=int, help="train images of a fresh world (default: the default world)"
    )
    parser.add_argument("--no-torch", action="store_true", help="only ours and the peak")
    return parser.parse_args(argv)


def measure(args, work: Path) -> list[dict]:
    """Every row of this benchmark (threads must already be set)."""
    torch, reason = (None, "--no-torch") if args.no_torch else torch_or_reason()
    if args.images:
        world = ensure_shapes_world(
            work / "world", counts={"train": args.images, "val": 1, "test": 1}
        )
    else:
        world = ensure_shapes_world()
    rows = [measure_model(name, world, args, torch, reason) for name in args.models]
    for row in rows:
        row["threads"] = args.threads
    inference = measure_inference(world, args, torch, reason)
    for row in inference:
        row["threads"] = args.threads
    return rows + inference


def main(argv: list[str] | None = None) -> int:
    import tempfile

    args = parse_args(argv)
    torch, _ = (None, None) if args.no_torch else torch_or_reason()
    set_threads(args.threads, torch)
    with tempfile.TemporaryDirectory() as work:
        rows = measure(args, Path(work))
    report(format_rows(rows), rows, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
