"""tools/model_table.py: which export counts as a model's default run, and the README rows."""

import importlib.util
import json
from pathlib import Path

import pytest

from evaluation.report import write_metrics_json
from models import get_model_spec, model_names

TOOL = Path(__file__).resolve().parent.parent / "tools" / "model_table.py"


@pytest.fixture(scope="module")
def model_table():
    spec = importlib.util.spec_from_file_location("model_table", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def recorded_settings(model_table, model, **changes):
    """What train.py records for `python train.py --model MODEL` plus `changes`."""
    output = {"export_dir": None, "no_export": False, "logdir": None, "list_models": False}
    return {**model_table.default_settings(model), **output, **changes}


def run(settings):
    return {"extra": {"settings": settings}}


def write_export(root, model, version, settings, accuracy=0.5):
    """Writes metrics.json the way train.py does (evaluation.report.write_metrics_json)."""
    path = root / model / str(version) / "assets.extra" / "metrics.json"
    write_metrics_json(
        path,
        model=model,
        task="classification",
        split="test",
        metrics={"accuracy": accuracy, "f1": 0.25, "roc_auc": 0.75},
        baseline={"accuracy": 0.5, "f1": 0.0},
        extra={"training_seconds": 90.0, "evaluation_seconds": 30.0, "settings": settings},
    )
    return json.loads(path.read_text())


def test_default_settings_resolve_the_models_training_defaults(model_table):
    settings = model_table.default_settings("fusion_classifier")
    defaults = get_model_spec("fusion_classifier").training_defaults
    for key, value in defaults.items():
        assert settings[key] == value
    assert settings["model"] == "fusion_classifier" and settings["dataset"] == "shapes"
    assert settings["fusion"] is None
    assert not set(model_table.OUTPUT_SETTINGS) & set(settings)


def test_is_default_run(model_table):
    model = "fusion_classifier"
    settings = recorded_settings(model_table, model)
    assert model_table.is_default_run(run(settings), model)
    # Written and read back as JSON, as the exports are.
    assert model_table.is_default_run(json.loads(json.dumps(run(settings))), model)
    # Where the export went does not matter.
    moved = {**settings, "export_dir": "/elsewhere", "logdir": "/logs", "no_export": True}
    assert model_table.is_default_run(run(moved), model)
    # train.py records the image size it resolved (64 when no flag or hub module sets it).
    assert settings["image_size"] == 64
    for key, value in [("fusion", "gated"), ("epochs", 99), ("dataset", "shapes:10,2,2"),
                       ("learning_rate", 0.5), ("model", "text_only"), ("image_size", 32),
                       ("tokenizer", "wordpiece")]:  # fmt: skip
        assert not model_table.is_default_run(run({**settings, key: value}), model), key
    assert not model_table.is_default_run({}, model)
    # A run recorded before a flag existed still counts; one missing its epochs does not.
    older = {key: value for key, value in settings.items() if key != "on_bad_example"}
    assert model_table.is_default_run(run(older), model)
    no_epochs = {key: value for key, value in settings.items() if key != "epochs"}
    assert not model_table.is_default_run(run(no_epochs), model)
    other = recorded_settings(model_table, "vqa")
    assert not model_table.is_default_run(run(other), model)


def test_newest_metrics_picks_the_highest_default_version(model_table, tmp_path):
    model = "fusion_classifier"
    settings = recorded_settings(model_table, model)
    write_export(tmp_path, model, 1, settings, accuracy=0.1)
    write_export(tmp_path, model, 2, settings, accuracy=0.2)
    write_export(tmp_path, model, 10, settings, accuracy=0.3)  # 10 is newer than 2 and 9
    write_export(tmp_path, model, 9, settings, accuracy=0.25)
    write_export(tmp_path, model, 11, {**settings, "fusion": "gated"}, accuracy=0.9)
    (tmp_path / model / "12").mkdir()  # an export without metrics
    write_export(tmp_path, model, "latest", settings, accuracy=0.99)  # not a version
    report = model_table.newest_metrics(tmp_path, model)
    assert report["metrics"]["accuracy"] == 0.3


def test_newest_metrics_without_a_default_export(model_table, tmp_path):
    model = "fusion_classifier"
    assert model_table.newest_metrics(tmp_path, model) is None
    settings = recorded_settings(model_table, model, epochs=1)
    write_export(tmp_path, model, 1, settings)
    assert model_table.newest_metrics(tmp_path, model) is None


def test_model_rows_list_every_registered_model(model_table, tmp_path):
    write_export(
        tmp_path, "fusion_classifier", 3, recorded_settings(model_table, "fusion_classifier")
    )
    write_export(tmp_path, "text_only", 1, recorded_settings(model_table, "text_only", epochs=1))
    rows = model_table.model_rows(tmp_path)
    assert rows[0].startswith("| model |") and rows[1].startswith("|---")
    body = rows[2:]
    assert [row.split("`")[1] for row in body] == model_names()
    by_name = dict(zip(model_names(), body, strict=True))
    row = by_name["fusion_classifier"]
    assert "| classification |" in row
    assert get_model_spec("fusion_classifier").description in row
    assert "accuracy 0.500 (baseline 0.500); F1 0.250 (baseline 0.000); ROC-AUC 0.750" in row
    assert row.endswith("| 2.0 |")  # (90 + 30) seconds
    for name in model_names():
        if name != "fusion_classifier":
            assert "| not run yet | — |" in by_name[name], name


def test_main_prints_the_table(model_table, tmp_path, capsys):
    assert model_table.main(["--root", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 + len(model_names())
    assert all("not run yet" in line for line in printed[2:])


def test_replace_table_rewrites_only_the_block(model_table):
    begin, end = model_table.BEGIN_MARKER, model_table.END_MARKER
    document = f"# Zoo\n\nintro\n{begin}\n| old |\n{end}\n\nmore\n"
    replaced = model_table.replace_table(document, "| new |", "README.md")
    assert replaced == f"# Zoo\n\nintro\n{begin}\n| new |\n{end}\n\nmore\n"
    assert model_table.replace_table(replaced, "| new |", "README.md") == replaced
    for broken in ("no markers", f"{end}\n{begin}\n", f"{begin} only"):
        with pytest.raises(ValueError, match="README.md: no"):
            model_table.replace_table(broken, "| new |", "README.md")


def test_main_updates_a_markdown_file(model_table, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        f"top\n{model_table.BEGIN_MARKER}\nOLD TABLE\n{model_table.END_MARKER}\nend\n"
    )
    assert model_table.main(["--root", str(tmp_path / "exports"), "--update", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("top\n") and text.endswith(f"{model_table.END_MARKER}\nend\n")
    assert "OLD TABLE" not in text and text.count("not run yet") == len(model_names())
