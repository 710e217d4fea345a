"""The command line: listing, errors, and one real train -> evaluate -> export run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

import train
from models import get_model_spec, model_names

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, env_extra=None, timeout=600):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
    )


def test_list_models_prints_name_task_and_description(capsys):
    assert train.main(["--list-models"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == model_names()
    assert "captioning" in lines[model_names().index("show_and_tell")]
    assert all(len(line.split()) > 3 for line in lines)


def test_unknown_model_lists_the_valid_names(capsys):
    assert train.main(["--model", "nope"]) == 2
    error = capsys.readouterr().err
    assert "Unknown model 'nope'" in error
    assert all(name in error for name in model_names())


def test_bad_flag_values_are_refused(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--model", "dual_encoder", "--epochs", "0"])
    assert "--epochs must be >= 1, got 0" in capsys.readouterr().err


def test_a_hub_handle_that_cannot_be_fetched_says_what_to_do(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub_cache"))
    handle = "https://tfhub.dev/mmzoo-tests/no-such-module/1"  # no network here; a 404 elsewhere
    assert train.main(["--model", "image_only", "--image-encoder", f"hub:{handle}"]) == 2
    error = capsys.readouterr().err
    assert handle in error and "TFHUB_CACHE_DIR" in error and "local path" in error


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--text-preprocessor", "hub:p"], "--text-preprocessor needs a hub: text encoder"),
        (["--freeze-text-encoder"], "--freeze-text-encoder needs a hub: text encoder"),
        (["--hub-output-key", "default"], "--hub-output-key needs a hub: image or text encoder"),
        (["--hub-input-range", "minus1to1"], "--hub-input-range needs a hub: image encoder"),
    ],
)
def test_hub_flags_without_a_hub_encoder_are_refused(flags, message, capsys):
    assert train.main(["--model", "fusion_classifier", *flags]) == 2
    assert message in capsys.readouterr().err


def test_a_bad_image_stops_the_run_before_training_when_asked(tmp_path, capsys):
    from PIL import Image

    rows = []
    for index in range(3):
        Image.new("RGB", (8, 8), (index * 60, 0, 0)).save(tmp_path / f"{index}.png")
        rows.append({"image": f"{index}.png", "text": f"text {index}", "label": "a"})
    (tmp_path / "1.png").write_bytes(b"this is not an image")
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps(row) for row in rows))
    flags = ["--model", "fusion_classifier", "--dataset", str(data), "--val-dataset", str(data)]
    assert train.main([*flags, "--on-bad-example", "error"]) == 2
    error = capsys.readouterr().err
    assert "1.png: unsupported format" in error and "row 1" in error
    assert train.parse_args(flags).on_bad_example == "skip"


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["skip", "error"])
def test_an_image_that_fails_to_decode_in_training_is_named_by_the_policy(tmp_path, capsys, policy):
    from tests.datasets.test_pipeline_settings import body_corrupt_png, png

    rows = []
    for index in range(6):
        (tmp_path / f"{index}.png").write_bytes(png(index * 40))
        rows.append({"image": f"{index}.png", "text": f"text {index}", "label": "ab"[index % 2]})
    (tmp_path / "4.png").write_bytes(body_corrupt_png())  # passes the header and tail checks
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps(row) for row in rows))
    flags = ["--model", "image_only", "--dataset", str(data), "--val-dataset", str(data)]
    flags += ["--epochs", "1", "--batch-size", "2", "--image-size", "16", "--no-export"]
    bad = str((tmp_path / "4.png").resolve())
    if policy == "error":
        # The test split (the validation data here) is decoded before training: it stops there.
        assert train.main([*flags, "--on-bad-example", policy]) == 2
        assert f"{bad}: an image of {data} could not be read or decoded" in capsys.readouterr().err
        clean = tmp_path / "clean.jsonl"
        clean.write_text("\n".join(json.dumps(row) for row in rows[:4]))
        flags += ["--test-dataset", str(clean)]
    status = train.main([*flags, "--on-bad-example", policy])
    output = capsys.readouterr()
    if policy == "error":
        assert status == 2
        assert f"{bad}: a training image could not be read or decoded in epoch 1" in output.err
    else:
        assert status == 0
        assert (
            f"1 of 6 training elements could not be read or decoded and were skipped:\n  #4: {bad}"
            in (output.out)
        )
        assert "1 of 6 validation elements could not be read or decoded" in output.out
        left_out = "1 image(s) could not be read or decoded; their 1 row(s) are left out"
        assert f"{left_out} of evaluation:\n  {bad}" in (output.out)


@pytest.mark.parametrize(
    "flags, learning_rate",
    [
        ([], 1e-3),
        (["--fusion", "concat"], 1e-3),
        (["--fusion", "cross_attention"], 3e-4),
        (["--fusion", "cross_attention", "--learning-rate", "0.002"], 2e-3),
    ],
)
def test_a_flag_wins_over_the_fusions_default_which_wins_over_the_models(flags, learning_rate):
    args = train.parse_args(["--model", "fusion_classifier", *flags])
    spec = get_model_spec("fusion_classifier")
    settings = train.training_settings(args, spec, train.builder_options(args))
    assert settings["learning_rate"] == pytest.approx(learning_rate)
    assert settings["epochs"] == spec.training_defaults["epochs"]


@pytest.mark.slow
def test_train_evaluate_export_end_to_end(tiny_shapes_world, tmp_path):
    export_dir = tmp_path / "exports"
    args = [
        "--model",
        "dual_encoder",
        "--dataset",
        "shapes:48,8,8",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--export-dir",
        str(export_dir),
        "--logdir",
        str(tmp_path / "tb"),
    ]
    env = {"MMZOO_DATA_DIR": str(tiny_shapes_world.parent)}
    completed = run_cli(*args, env_extra=env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "text_to_image_r@5" in completed.stdout and "baseline" in completed.stdout
    metrics = json.loads((export_dir / "1" / "assets.extra" / "metrics.json").read_text())
    assert metrics["model"] == "dual_encoder"
    assert set(metrics["metrics"]) == set(metrics["baseline"])
    assert (export_dir / "1" / "saved_model.pb").exists()
    assert len(metrics["extra"]["training_loss"]) == 1  # one epoch
    # The Keras model travels with the export, for publish_encoders.py and further training.
    reloaded = keras.saving.load_model(export_dir / "1" / "assets.extra" / "model.keras")
    assert reloaded.name == "dual_encoder"
    assert (export_dir / "1" / "assets.extra" / "vocabulary.txt").read_text().startswith("<pad>")
    assert any((tmp_path / "tb").rglob("events.out.tfevents.*"))
    # The next export's version: test_registry_models.py's test_a_second_export_is_the_next_version.
    assert sorted(p.name for p in export_dir.iterdir()) == ["1"]
