"""Prints the README's model table from the exports' metrics files.

Each row comes from the newest `saved_models/<model>/<version>/assets.extra/metrics.json`
that a default run (`python train.py --model NAME`) wrote, so the README shows
what was measured, not what was typed. Models without such an export are listed
as not run.

    python tools/model_table.py                 # markdown table on stdout
    python tools/model_table.py --root DIR      # exports somewhere else
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# The figures a reader compares per task: (metric key, column label).
HEADLINE_METRICS = {
    "captioning": (("bleu_4", "BLEU-4"), ("cider_d", "CIDEr-D")),
    "retrieval": (("text_to_image_r@1", "t→i R@1"), ("text_to_image_r@5", "t→i R@5")),
    "classification": (("accuracy", "accuracy"), ("f1", "F1"), ("roc_auc", "ROC-AUC")),
    "vqa": (("vqa_accuracy", "VQA accuracy"),),
}


# Settings that say where the export went, not what was trained.
OUTPUT_SETTINGS = ("export_dir", "no_export", "logdir", "list_models")


def default_settings(model: str) -> dict:
    """The settings `python train.py --model MODEL` resolves to (as train.py records them)."""
    from models import get_model_spec
    from train import FLAG_DEFAULTS, parse_args

    arguments = vars(parse_args(["--model", model]))
    resolved = {**FLAG_DEFAULTS, **get_model_spec(model).training_defaults}
    return {
        key: value for key, value in {**arguments, **resolved}.items() if key not in OUTPUT_SETTINGS
    }


def is_default_run(report: dict, model: str) -> bool:
    settings = report.get("settings", {})
    expected = default_settings(model)
    return all(settings.get(key) == value for key, value in expected.items())


def newest_metrics(root: Path, model: str) -> dict | None:
    """The metrics.json of the newest default-settings export of `model`, or None."""
    versions = [path for path in (root / model).glob("*") if path.name.isdigit()]
    for version in sorted(versions, key=lambda path: int(path.name), reverse=True):
        path = version / "assets.extra" / "metrics.json"
        if path.is_file():
            report = json.loads(path.read_text(encoding="utf-8"))
            if is_default_run(report, model):
                return report
    return None


def format_metrics(task: str, report: dict) -> str:
    parts = []
    for key, label in HEADLINE_METRICS[task]:
        model = report["metrics"].get(key)
        baseline = (report.get("baseline") or {}).get(key)
        if model is None:
            continue
        text = f"{label} {model:.3f}"
        if baseline is not None:
            text += f" (baseline {baseline:.3f})"
        parts.append(text)
    return "; ".join(parts)


def model_rows(root: Path) -> list[str]:
    from models import get_model_spec, model_names

    rows = [
        "| model | task | what it is | shapes test split, default run | minutes (2 cores) |",
        "|---|---|---|---|---|",
    ]
    for name in model_names():
        spec = get_model_spec(name)
        report = newest_metrics(root, name)
        if report is None:
            figures, minutes = "not run yet", "—"
        else:
            figures = format_metrics(spec.task, report)
            seconds = report.get("training_seconds", 0) + report.get("evaluation_seconds", 0)
            minutes = f"{seconds / 60:.1f}"
        rows.append(f"| `{name}` | {spec.task} | {spec.description} | {figures} | {minutes} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="saved_models", help="folder of the exports")
    args = parser.parse_args(argv)
    print("\n".join(model_rows(Path(args.root))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
