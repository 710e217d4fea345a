"""predict.py: an export's signatures run on image files and texts, one JSON line per example."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

import predict

ROOT = Path(__file__).resolve().parents[2]
TWO_IMAGES = ("000002.jpg", "000003.jpg")


@pytest.fixture
def run_main(exports, loaded, monkeypatch, capsys):
    """predict.main() in this process on a cached load: returns (status, JSON lines, stderr)."""
    by_dir = {str(export.version_dir): name for name, export in exports.items()}
    monkeypatch.setattr(predict, "load_export", lambda export_dir: loaded(by_dir[export_dir]))

    def run(*argv: str) -> tuple[int, list[dict], str]:
        status = predict.main([str(arg) for arg in argv])
        captured = capsys.readouterr()
        lines = [json.loads(line) for line in captured.out.splitlines()] if status == 0 else []
        return status, lines, captured.err

    return run


def other_images(export) -> list[str]:
    """Two more training images beside the export's own, from the same folder."""
    folder = Path(export.image_path).parent
    return [str(folder / name) for name in TWO_IMAGES]


def direct(loaded_export, signature: str, **columns) -> dict[str, list]:
    """The signature called directly on string tensors, outputs as lists."""
    outputs = loaded_export.signatures[signature](
        **{name: tf.constant(values, tf.string) for name, values in columns.items()}
    )
    return {name: value.numpy().tolist() for name, value in outputs.items()}


def read(path: str) -> bytes:
    return Path(path).read_bytes()


def test_a_captioning_export_in_a_process_that_imports_no_project_code(exports, loaded):
    export = exports["show_attend_tell"]
    images = other_images(export)
    # -I leaves the script's folder (the repository) off sys.path: only TensorFlow is there.
    completed = subprocess.run(
        [sys.executable, "-I", str(ROOT / "predict.py"), str(export.version_dir.parent)]
        + ["--signature", "caption_with_attention", "--image", *images],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    lines = [json.loads(line) for line in completed.stdout.splitlines()]
    expected = direct(
        loaded("show_attend_tell"),
        "caption_with_attention",
        image_bytes=[read(path) for path in images],
    )
    assert [line["inputs"] for line in lines] == [{"image": path} for path in images]
    assert [line["outputs"]["caption"] for line in lines] == [
        caption.decode() for caption in expected["caption"]
    ]
    attention = lines[0]["outputs"]["attention"]
    assert len(attention) == len(expected["attention"][0])
    assert attention[0] == pytest.approx(expected["attention"][0][0], abs=1e-4)
    assert set(lines[0]["outputs"]) == {"caption", "attention"}


def test_every_retrieval_signature_prints_its_outputs(exports, loaded, run_main):
    export = exports["dual_encoder"]
    images = other_images(export)
    texts = [export.text, "a large red circle in the middle"]
    expected = direct(
        loaded("dual_encoder"),
        "serving_default",
        image_bytes=[read(path) for path in images],
        text=texts,
    )

    status, lines, _ = run_main(export.version_dir, "--image", *images, "--text", *texts)
    assert status == 0
    assert [line["inputs"] for line in lines] == [
        {"image": image, "text": text} for image, text in zip(images, texts, strict=True)
    ]
    assert [line["outputs"]["score"] for line in lines] == [
        round(score, predict.DIGITS) for score in expected["score"]
    ]

    status, lines, _ = run_main(
        export.version_dir, "--signature", "encode_image", "--image", images[0]
    )
    embedding = lines[0]["outputs"]["embedding"]
    assert status == 0 and set(lines[0]["outputs"]) == {"embedding"}
    assert sum(value * value for value in embedding) == pytest.approx(1.0, abs=1e-2)

    status, lines, _ = run_main(export.version_dir, "--signature", "encode_text", "--text", *texts)
    assert status == 0 and len(lines) == 2
    assert [set(line["outputs"]) for line in lines] == [{"embedding"}] * 2
    assert len(lines[1]["outputs"]["embedding"]) == len(embedding)


def test_classification_pairs_one_text_with_several_images(exports, loaded, run_main):
    export = exports["fusion_classifier"]
    images = other_images(export)
    expected = direct(
        loaded("fusion_classifier"),
        "serving_default",
        image_bytes=[read(path) for path in images],
        text=[export.text] * 2,
    )
    status, lines, err = run_main(export.version_dir, "--image", *images, "--text", export.text)
    assert status == 0
    assert "pairing the one text with each of the 2 images" in err
    assert [line["inputs"]["text"] for line in lines] == [export.text] * 2
    assert [line["outputs"]["label"] for line in lines] == [
        label.decode() for label in expected["label"]
    ]
    assert lines[0]["outputs"]["probabilities"] == [
        round(value, predict.DIGITS) for value in expected["probabilities"][0]
    ]


def test_vqa_pairs_one_image_with_several_questions(exports, run_main):
    export = exports["vqa"]
    questions = [export.text, "what colour is the circle?", "is there a square?"]
    status, lines, err = run_main(
        export.version_dir, "--image", export.image_path, "--text", *questions
    )
    assert status == 0
    assert "pairing the one image with each of the 3 texts" in err
    assert [line["inputs"] for line in lines] == [
        {"image": export.image_path, "question": question} for question in questions
    ]
    assert all(set(line["outputs"]) == {"answer", "scores"} for line in lines)
    assert sum(lines[0]["outputs"]["scores"]) == pytest.approx(1.0, abs=1e-2)


def test_list_prints_every_signature_with_its_inputs_and_outputs(exports, run_main, capsys):
    status = predict.main([str(exports["dual_encoder"].version_dir), "--list"])
    listing = capsys.readouterr().out.splitlines()
    assert status == 0
    assert "encode_text  inputs: text: string[None]" in listing
    assert "serving_default  inputs: image_bytes: string[None], text: string[None]" in listing
    assert "serving_default  outputs: score: float32[None]" in listing
    assert any(
        line.startswith("encode_image  outputs: embedding: float32[None, ") for line in listing
    )


@pytest.mark.parametrize(
    "model, arguments, message",
    [
        ("show_and_tell", ["--image", "/no/such/photo.jpg"], "cannot read image file /no/such"),
        ("show_and_tell", ["--image", "IMAGE", "--text", "a"], "the signature takes no text"),
        ("show_and_tell", ["--signature", "nope", "--image", "IMAGE"], "no signature 'nope'"),
        ("vqa", ["--image", "IMAGE"], "input question needs at least one --text TEXT"),
        ("vqa", ["--image", "IMAGE", "IMAGE", "--text", "a", "b", "c"], "2 images and 3 texts"),
        ("dual_encoder", ["--signature", "encode_text", "--image", "IMAGE"], "takes no image"),
    ],
)
def test_errors_exit_2_naming_the_problem(exports, run_main, model, arguments, message):
    export = exports[model]
    arguments = [export.image_path if arg == "IMAGE" else arg for arg in arguments]
    status, _, err = run_main(export.version_dir, *arguments)
    assert status == 2
    assert err.startswith("predict.py: error: ") and message in err


def test_an_image_the_model_cannot_decode_is_named_with_the_model_s_reason(exports, run_main):
    export = exports["show_and_tell"]
    status, _, err = run_main(export.version_dir, "--image", export.image_path, __file__)
    assert status == 2
    assert f"(image files: {export.image_path}, {__file__})" in err
    reason = err.split(f"{__file__}): ", 1)[1]
    assert reason.strip() and len(err.splitlines()) == 1
    assert "Graph execution error" not in err and "[[{{node" not in err


def test_a_model_folder_means_its_newest_integer_version(tmp_path):
    for version in ("2", "10", "9", "not_a_version"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "saved_model.pb").write_bytes(b"")
    (tmp_path / "11").mkdir()  # no saved_model.pb: not a finished version
    assert predict.resolve_version_dir(tmp_path) == tmp_path / "10"
    assert predict.resolve_version_dir(tmp_path / "2") == tmp_path / "2"
    with pytest.raises(predict.UsageError, match="neither a SavedModel folder"):
        predict.resolve_version_dir(tmp_path / "11")
    assert predict.main([str(tmp_path / "missing"), "--list"]) == 2


def test_pairing_rules_without_a_model():
    names = ["image_bytes", "text"]
    assert predict.pair_examples(names, ["a.jpg", "b.jpg"], ["x", "y"]) == [
        {"image_bytes": "a.jpg", "text": "x"},
        {"image_bytes": "b.jpg", "text": "y"},
    ]
    assert predict.pair_examples(["text"], [], ["x"]) == [{"text": "x"}]
    with pytest.raises(predict.UsageError, match=r"inputs \['pixels'\] that cannot be fed"):
        predict.pair_examples(["pixels"], ["a.jpg"], [])
