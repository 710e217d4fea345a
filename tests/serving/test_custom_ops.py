"""Exports list the ops they need beyond core TensorFlow, and loading says what is missing."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import predict
from serving.custom_ops import function_op_types, non_core_ops, saved_model_op_types

ROOT = Path(__file__).resolve().parents[2]
TOKENIZER_OP = "WordpieceTokenizeWithOffsets"


def signature_non_core_ops(export) -> list[str]:
    return non_core_ops(function_op_types(export.module.signatures().values()))


def test_word_exports_need_core_tensorflow_only(exports):
    for name, export in exports.items():
        assert non_core_ops(saved_model_op_types(export.version_dir)) == [], name
    assert signature_non_core_ops(exports["vqa"]) == []


def test_wordpiece_exports_that_read_text_need_the_tf_text_tokenizer_op(wordpiece_exports):
    # (A wordpiece captioner's export needs none: tests/test_train_tokenizers.py.)
    for name, export in wordpiece_exports.items():
        assert signature_non_core_ops(export) == [TOKENIZER_OP], name
        assert non_core_ops(saved_model_op_types(export.version_dir)) == [TOKENIZER_OP], name


LOAD_WITHOUT_TF_TEXT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    from serving.custom_ops import MissingOpsError, load_saved_model

    report = {}
    try:
        load_saved_model(sys.argv[1])
    except MissingOpsError as error:
        report["ours"] = str(error)
    try:
        tf.saved_model.load(sys.argv[1])
    except Exception as error:
        report["bare"] = type(error).__name__
    report["tf_text_imported"] = "tensorflow_text" in sys.modules
    import tensorflow_text  # noqa: F401
    loaded = load_saved_model(sys.argv[1])
    embedding = loaded.signatures["encode_text"](text=tf.constant(["a red circel"]))["embedding"]
    report["served"] = embedding.shape.as_list()
    print(json.dumps(report))
    """
)


def test_loading_without_tensorflow_text_says_to_import_it(wordpiece_exports):
    version_dir = wordpiece_exports["dual_encoder"].version_dir
    completed = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_TF_TEXT, str(version_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert not report["tf_text_imported"]
    assert "bare" in report  # TensorFlow's own load fails too, with "Op type not registered"
    for part in (str(version_dir), TOKENIZER_OP, "import tensorflow_text", "TF Serving"):
        assert part in report["ours"], part
    assert report["served"][0] == 1  # once imported, it loads and serves


def test_predict_runs_a_wordpiece_export(wordpiece_exports, capsys):
    export = wordpiece_exports["vqa"]
    status = predict.main(
        [str(export.version_dir), "--image", export.image_path, "--text", "what colour is it"]
    )
    assert status == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(line["outputs"]) == {"answer", "scores"}


def test_predict_without_tensorflow_text_says_to_install_it(wordpiece_exports):
    version_dir = wordpiece_exports["dual_encoder"].version_dir
    # As where tensorflow-text is not installed: its import fails.
    script = (
        "import runpy, sys; sys.modules['tensorflow_text'] = None; "
        f"sys.argv = ['predict.py', {str(version_dir)!r}, '--signature', 'encode_text', "
        "'--text', 'a red circel']; "
        f"runpy.run_path({str(ROOT / 'predict.py')!r}, run_name='__main__')"
    )
    completed = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 2, completed.stderr[-2000:]
    for part in (str(version_dir), TOKENIZER_OP, "pip install tensorflow-text"):
        assert part in completed.stderr, part
