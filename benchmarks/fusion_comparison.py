"""Every fusion of fusion_classifier against the image_only and text_only baselines.

Trains each on the same data with the same settings (default: the shapes
image-text matching data, where neither modality alone beats chance) and prints
one table, so the gain from fusion is measured side by side, as MMF reports it.

    python benchmarks/fusion_comparison.py                       # all fusions, default epochs
    python benchmarks/fusion_comparison.py --fusions concat gated --epochs 3
    python benchmarks/fusion_comparison.py --json results.json   # also write the rows
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import train  # noqa: E402  (after the path is set)
from models.fusions import FUSIONS  # noqa: E402
from models.pair_classifier import DEFAULT_FUSION  # noqa: E402

COLUMNS = ("accuracy", "f1", "roc_auc")


def run_one(model: str, fusion: str | None, common: list[str], export: bool) -> dict:
    """Trains and evaluates one model; `export` keeps the run in saved_models/ (the
    model table reads default runs from there)."""
    argv = ["--model", model, *common] + ([] if export else ["--no-export"])
    if fusion:
        argv += ["--fusion", fusion]
    summary = train.run(train.parse_args(argv))
    return {
        "model": model if fusion is None else f"{model} --fusion {fusion}",
        **{column: summary["metrics"][column] for column in COLUMNS},
        "epochs": summary["settings"]["epochs"],
        "learning_rate": summary["settings"]["learning_rate"],
        "training_seconds": summary["training_seconds"],
    }


def format_rows(rows: list[dict]) -> str:
    best_unimodal = max(
        row["accuracy"] for row in rows if row["model"] in ("image_only", "text_only")
    )
    lines = [
        "| model | accuracy | F1 | ROC-AUC | accuracy over best unimodal "
        "| epochs | learning rate | fit seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        gain = (row["accuracy"] - best_unimodal) * 100
        lines.append(
            f"| {row['model']} | {row['accuracy']:.3f} | {row['f1']:.3f} | {row['roc_auc']:.3f} "
            f"| {gain:+.1f} points | {row['epochs']} | {row['learning_rate']:g} "
            f"| {row['training_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fusions", nargs="+", default=list(FUSIONS), choices=FUSIONS)
    parser.add_argument("--dataset", default="shapes")
    parser.add_argument("--epochs", help="default: each model's own")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args(argv)
    common = ["--dataset", args.dataset] + (["--epochs", args.epochs] if args.epochs else [])
    default_run = not common[2:] and args.dataset == "shapes"
    rows = [run_one(name, None, common, default_run) for name in ("image_only", "text_only")]
    for fusion in args.fusions:
        if fusion == DEFAULT_FUSION:  # the default run of fusion_classifier itself
            rows.append(run_one("fusion_classifier", None, common, default_run))
            rows[-1]["model"] += f" --fusion {fusion}"
        else:
            rows.append(run_one("fusion_classifier", fusion, common, export=False))
    table = format_rows(rows)
    print("\n" + table)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
