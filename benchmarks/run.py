"""Every TensorFlow speed benchmark in one run: one JSON, one Markdown report and one
bar chart (benchmarks/jax_speed.py, for a JAX machine, runs on its own).

Runs, in this order and in one process (the same thread count throughout):

1. benchmarks/frameworks.py: training of dual_encoder, show_and_tell and vqa beside
   their PyTorch twins and the machine's matmul peak; inference of the towers;
2. benchmarks/input_pipeline.py: the input pipeline beside the training it feeds;
3. benchmarks/serving.py: the exports' latency and throughput beside the model.

and writes `<out>/benchmarks.json` (every row, the machine, the date),
`<out>/benchmarks.md` (the tables) and `<out>/benchmarks.png` (examples/s, ours
beside PyTorch, and fraction of peak; needs matplotlib from
benchmarks/requirements.txt, skipped with a note without it).

    python benchmarks/run.py                        # everything, full size
    python benchmarks/run.py --quick --out /tmp/b   # one tiny round of each
    python benchmarks/run.py --only frameworks serving
"""

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import frameworks, input_pipeline, serving  # noqa: E402
from benchmarks.rounds import BUSY_SHARE  # noqa: E402
from training.onednn import onednn_enabled  # noqa: E402

BENCHMARKS = ("frameworks", "input_pipeline", "serving")
RESULTS = Path(__file__).resolve().parent / "results"

QUICK = {
    "frameworks": [
        "--rounds", "1", "--steps", "3", "--batch-size", "8", "--batches", "2",
        "--inference-calls", "2", "--images", "32",
    ],
    "input_pipeline": ["--sizes", "32", "--images", "64", "--steps", "3", "--rounds", "1"],
    "serving": ["--models", "image_only", "--rounds", "1", "--repeats", "2", "--images", "32"],
}  # fmt: skip
FULL = {
    "frameworks": ["--rounds", "5"],
    "input_pipeline": ["--sizes", "64", "--rounds", "3"],
    "serving": ["--models", *frameworks.MODELS],
}


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's model name where Linux gives it: the hosts behind this VM change from day
    to day (a 2048² matmul peak of 190 GFLOP/s on one, 390 on another)."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return None
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else None


# The x86 features that decide TensorFlow's default for oneDNN (training/onednn.py) and
# the widest vectors its kernels can use.
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str] | None:
    """Which of CPU_FLAGS the first CPU has, where Linux lists its flags."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return None
    listed = [line.split(":", 1)[1].split() for line in lines if line.startswith("flags")]
    return [flag for flag in CPU_FLAGS if flag in listed[0]] if listed else None


def machine() -> dict:
    versions = {}
    for module in ("tensorflow", "keras", "torch", "numpy"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = None
    return {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "onednn": onednn_enabled(),
        "python": platform.python_version(),
        **versions,
    }


def run_one(name: str, flags: list[str], work: Path) -> list[dict]:
    """Runs one benchmark's main() with its JSON in `work`; returns its rows."""
    output = work / f"{name}.json"
    module = {"frameworks": frameworks, "input_pipeline": input_pipeline, "serving": serving}[name]
    if name == "frameworks":
        args = frameworks.parse_args([*flags, "--json", str(output)])
        rows = frameworks.measure(args, work)
        frameworks.report(frameworks.format_rows(rows), rows, output)
    else:
        if module.main([*flags, "--json", str(output)]) != 0:
            raise RuntimeError(f"benchmark {name} failed")
    return json.loads(output.read_text())


def processor_words(machine_record: dict) -> str:
    model = machine_record.get("cpu_model")  # absent from runs before it was recorded
    kernels = {True: "oneDNN kernels on", False: "oneDNN kernels off"}.get(
        machine_record.get("onednn")  # absent before 2026-12-03
    )
    return ", ".join(part for part in (machine_record["processor"], model, kernels) if part)


def markdown(results: dict) -> str:
    date = results["date"][:10]
    parts = [
        f"Measured {date} on {results['machine']['cpus']} CPUs "
        f"({processor_words(results['machine'])}), "
        f"TensorFlow {results['machine']['tensorflow']}, "
        f"Keras {results['machine']['keras']}, PyTorch {results['machine']['torch']}, "
        f"{results['threads']} threads. A block counts as busy when other processes used "
        f"more than {BUSY_SHARE:.0%} of the CPUs while it ran."
    ]
    tables = {
        "frameworks": ("Training and inference beside PyTorch and peak", frameworks.format_rows),
        "input_pipeline": ("Input pipeline beside training", input_pipeline.format_rows),
        "serving": ("Serving latency and throughput", serving.format_rows),
    }
    for name, (title, formatter) in tables.items():
        if results.get(name):
            parts.append(f"#### {title}\n\n{formatter(results[name])}")
    return "\n\n".join(parts) + "\n"


def chart(results: dict, path: Path) -> str | None:
    """Draws the bar chart; returns why not where matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        return "matplotlib is not installed (pip install -r benchmarks/requirements.txt)"
    rows = [row for row in results.get("frameworks", []) if row["benchmark"] == "training"]
    if not rows:
        return "no training rows to draw"
    figure, (speed, peak) = pyplot.subplots(1, 2, figsize=(11, 4))
    # A model some of whose figures came only from busy blocks is starred.
    names = [
        row["model"] + (" *" if any(f["all_busy"] for f in row["figures"].values()) else "")
        for row in rows
    ]
    positions = range(len(rows))
    series = [("ours (Trainer)", "ours_trainer"), ("ours (fit)", "ours_fit")]
    if all("torch_per_s" in row for row in rows):
        series.append(("PyTorch", "torch_per_s"))
    width = 0.8 / len(series)
    for index, (label, key) in enumerate(series):
        values = [row[key if key.endswith("_per_s") else f"{key}_per_s"] for row in rows]
        speed.bar([p + index * width for p in positions], values, width, label=label)
    speed.set_xticks([p + width * (len(series) - 1) / 2 for p in positions], names)
    speed.set_ylabel("training examples / s")
    speed.legend()
    fractions = [row["ours_trainer_of_peak"] * 100 for row in rows]
    labels = list(names)
    for row in results.get("frameworks", []):
        if row["benchmark"] == "inference":
            fractions.append(row["of_peak"] * 100)
            labels.append(row["tower"].replace("_", " ") + " (infer)")
    peak.bar(range(len(fractions)), fractions)
    peak.set_xticks(range(len(fractions)), labels, rotation=20, ha="right")
    peak.set_ylabel("% of matmul peak")
    title = f"Measured {results['date'][:10]}, {results['machine']['cpus']} CPUs"
    if any(name.endswith("*") for name in names):
        title += " (* every block of a figure was taken while the machine was busy)"
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="one tiny round of each")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the three files")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args(argv)
    torch, _ = (None, None) if args.no_torch else frameworks.torch_or_reason()
    frameworks.set_threads(args.threads, torch)
    flags = QUICK if args.quick else FULL
    results = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "threads": args.threads,
        "quick": args.quick,
        "busy_share": BUSY_SHARE,
    }
    with tempfile.TemporaryDirectory() as work:
        for name in args.only:
            extra = ["--threads", str(args.threads)] if name == "frameworks" else []
            if name == "frameworks" and args.no_torch:
                extra.append("--no-torch")
            results[name] = run_one(name, [*flags[name], *extra], Path(work))
    args.out.mkdir(parents=True, exist_ok=True)
    results["chart_skipped"] = chart(results, args.out / "benchmarks.png")
    (args.out / "benchmarks.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "benchmarks.md").write_text(markdown(results))
    print(markdown(results))
    if results["chart_skipped"]:
        print(f"chart skipped: {results['chart_skipped']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
