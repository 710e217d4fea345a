"""Published encoders: TF2 Hub reusable SavedModels of a trained model's backbones.

Two exports made the way train.py makes them (a dual encoder: image and text; a
captioner: image only), built untrained at small sizes, are published once per
module; each test then loads the folders the way a user does.
"""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

import publish_encoders
from datasets.text import WordVocabulary
from models import build_model, get_model_spec
from publishing.hub_modules import ImageEncoderModule, TextEncoderModule
from publishing.publish import find_backbones
from publishing.publish import publish_encoders as publish
from serving.export import export_saved_model
from serving.model_card import SUMMARY_FIELDS, build_model_card
from tasks import get_task
from tasks.options import TaskOptions

OPTIONS = TaskOptions(image_size=32, batch_size=4, sequence_length=8, beam_size=1)
MODELS = ("dual_encoder", "show_and_tell")
TEXTS = [
    "A red circle, LEFT of a blue square!",
    "a green triangle above a yellow star and a red circle and a blue square",  # > 8 words
    "zebra unknownword",
    "",
]


@dataclass(frozen=True)
class Published:
    """An export, the in-memory model it holds and its published encoder folders."""

    name: str
    version_dir: Path
    model: keras.Model
    vocabulary: WordVocabulary
    folders: dict[str, Path]

    def backbone(self, encoder: str) -> keras.Model:
        return find_backbones(self.model)[encoder][1]


def make_export(name: str, root: Path) -> tuple[Path, keras.Model, WordVocabulary]:
    """Builds `name` untrained and exports it with train.py's extra files and model.keras."""
    keras.utils.set_random_seed(0)
    spec = get_model_spec(name)
    task = get_task(spec.task)
    vocabulary = WordVocabulary.from_texts(TEXTS[:2] + ["a purple hexagon below"])
    model = build_model(spec, task.model_arguments(vocabulary, OPTIONS), {})
    module = task.serving_module(model, vocabulary, OPTIONS)
    summary = {field: None for field in SUMMARY_FIELDS}
    summary.update(
        model=name,
        task=spec.task,
        vocabulary_size=vocabulary.size,
        metrics={},
        settings={"image_size": OPTIONS.image_size, "sequence_length": OPTIONS.sequence_length},
    )
    version_dir = export_saved_model(
        module,
        root / name,
        extra_files={
            "vocabulary.txt": vocabulary.to_text(),
            "model_card.json": build_model_card(summary, module),
        },
        keras_model=model,
    )
    return version_dir, model, vocabulary


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> dict[str, Published]:
    root = tmp_path_factory.mktemp("publishing")
    found = {}
    for name in MODELS:
        version_dir, model, vocabulary = make_export(name, root / "exports")
        encoders = publish(version_dir, root / "hub" / name)
        folders = {encoder.encoder: encoder.path for encoder in encoders}
        found[name] = Published(name, version_dir, model, vocabulary, folders)
    return found


def images(count: int = 3, seed: int = 0) -> np.ndarray:
    size = OPTIONS.image_size
    return np.random.default_rng(seed).random((count, size, size, 3), dtype=np.float32)


def test_each_model_publishes_the_encoders_it_has(published):
    assert set(published["dual_encoder"].folders) == {"image", "text"}
    assert set(published["show_and_tell"].folders) == {"image"}
    for export in published.values():
        for encoder, folder in export.folders.items():
            assert folder.name == f"{encoder}_encoder"
            assert (folder / "saved_model.pb").is_file() and (folder / "README.md").is_file()
            metadata = json.loads((folder / "metadata.json").read_text())
            assert metadata["model"] == export.name and metadata["encoder"] == encoder
            assert metadata["source_export"] == str(export.version_dir.resolve())
            assert metadata["output_dim"] == export.backbone(encoder).output["pooled"].shape[-1]
        assert not [path.name for path in export.folders["image"].parent.glob(".staging*")]


@pytest.mark.parametrize("name", MODELS)
def test_a_published_image_encoder_computes_the_backbone_pooled_vector(published, name):
    export = published[name]
    module = hub.load(str(export.folders["image"]))
    size = OPTIONS.image_size
    for function in module.__call__.concrete_functions:
        spec = function.structured_input_signature[0][0]
        assert spec.shape.as_list() == [None, size, size, 3] and spec.dtype == tf.float32
    batch = images()
    expected = export.backbone("image")(batch, training=False)["pooled"].numpy()
    np.testing.assert_allclose(module(batch).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(module(batch, training=False).numpy(), expected, atol=1e-5)
    served = module.signatures["serving_default"](images=tf.constant(batch))
    np.testing.assert_allclose(served["default"].numpy(), expected, atol=1e-5)
    assert module(batch[:0]).shape == (0, expected.shape[1])
    assert list(module.regularization_losses) == []


def test_a_published_text_encoder_preprocesses_raw_strings_like_the_model(published):
    export = published["dual_encoder"]
    module = hub.load(str(export.folders["text"]))
    texts = tf.constant(TEXTS)
    backbone = export.backbone("text")
    expected = backbone(export.vocabulary.encode(texts, OPTIONS.sequence_length), training=False)
    outputs = module(texts)
    assert set(outputs) == {"default", "pooled_output", "sequence_output"}
    for key, backbone_key in (
        ("default", "pooled"),
        ("pooled_output", "pooled"),
        ("sequence_output", "sequence"),
    ):
        assert outputs[key].dtype == tf.float32
        np.testing.assert_allclose(outputs[key], expected[backbone_key], atol=1e-5, err_msg=key)
    assert outputs["sequence_output"].shape == (len(TEXTS), OPTIONS.sequence_length, 256)
    served = module.signatures["serving_default"](texts=texts)
    np.testing.assert_allclose(served["pooled_output"], expected["pooled"], atol=1e-5)
    vocabulary_file = module.vocabulary_file.asset_path.numpy().decode()
    assert Path(vocabulary_file).read_text() == export.vocabulary.to_text()


def test_training_true_runs_dropout_and_batch_norm_in_training_mode(published):
    batch = images()
    image = hub.load(str(published["dual_encoder"].folders["image"]))
    np.testing.assert_allclose(image(batch), image(batch), atol=1e-6)
    first, second = image(batch, training=True), image(batch, training=True)
    assert np.abs(first - second).max() > 1e-3  # dropout: a new mask each call
    text = hub.load(str(published["dual_encoder"].folders["text"]))
    texts = tf.constant(TEXTS)
    np.testing.assert_allclose(text(texts)["default"], text(texts)["default"], atol=1e-6)
    first, second = text(texts, training=True), text(texts, training=True)
    assert np.abs(first["default"] - second["default"]).max() > 1e-3

    captioner = hub.load(str(published["show_and_tell"].folders["image"]))  # no dropout
    moving = [v for v in captioner.variables if "moving_mean" in v.name]
    before = [v.numpy() for v in moving]
    inference = captioner(batch).numpy()
    assert all(np.array_equal(v.numpy(), b) for v, b in zip(moving, before, strict=True))
    training = captioner(batch, training=True).numpy()
    assert np.abs(training - inference).max() > 1e-3  # batch statistics, not moving ones
    assert moving and all(
        not np.array_equal(v.numpy(), b) for v, b in zip(moving, before, strict=True)
    )


def used_trainable_variables(backbone: keras.Model, inputs, keys: tuple[str, ...]) -> int:
    """How many trainable variables of the in-memory backbone feed the outputs `keys` (in
    inference mode: training would move its batch norm statistics)."""
    with tf.GradientTape() as tape:
        outputs = backbone(inputs, training=False)
        loss = sum(tf.reduce_sum(outputs[key]) for key in keys)
    gradients = tape.gradient(loss, backbone.trainable_variables)
    return sum(gradient is not None for gradient in gradients)


def test_gradients_reach_every_trainable_variable(published):
    export = published["dual_encoder"]
    texts = tf.constant(TEXTS)
    tokens = export.vocabulary.encode(texts, OPTIONS.sequence_length)
    for encoder, inputs, backbone_inputs, keys in (
        ("image", images(), images(), ("pooled",)),
        ("text", texts, tokens, ("pooled", "sequence")),
    ):
        module = hub.load(str(export.folders[encoder]))
        trainable = list(module.trainable_variables)
        assert {id(v) for v in trainable} <= {id(v) for v in module.variables}
        with tf.GradientTape() as tape:
            outputs = module(inputs, training=True)
            if encoder == "text":
                outputs = {
                    "pooled": outputs["pooled_output"],
                    "sequence": outputs["sequence_output"],
                }
            else:
                outputs = {"pooled": outputs}
            loss = sum(tf.reduce_sum(tf.square(outputs[key])) for key in keys)
        gradients = tape.gradient(loss, trainable)
        assert all(gradient is not None for gradient in gradients), encoder
        # Every backbone weight that computes the outputs, and no other (the image
        # module leaves out the region projection).
        assert len(trainable) == used_trainable_variables(
            export.backbone(encoder), backbone_inputs, keys
        ), encoder


def test_regularization_losses_are_the_backbone_weight_penalties(tmp_path):
    inputs = keras.Input((8, 8, 3), name="image")
    features = keras.layers.Conv2D(4, 3, kernel_regularizer=keras.regularizers.L2(0.1))(inputs)
    pooled = keras.layers.Dense(5, kernel_regularizer=keras.regularizers.L1(0.01))(
        keras.layers.GlobalAveragePooling2D()(features)
    )
    regions = keras.layers.Reshape((36, 4))(features)
    backbone = keras.Model(inputs, {"pooled": pooled, "regions": regions})
    module = ImageEncoderModule(backbone)
    tf.saved_model.save(module, str(tmp_path / "encoder"))
    loaded = hub.load(str(tmp_path / "encoder"))
    penalties = sorted(float(loss()) for loss in loaded.regularization_losses)
    expected = sorted(float(loss) for loss in backbone.losses)
    assert len(penalties) == 2
    np.testing.assert_allclose(penalties, expected, rtol=1e-6)


TF_ONLY_SCRIPT = """
import json
import sys
import numpy as np
import tensorflow as tf

out, size, texts, *folders = sys.argv[1:]
size = int(size)
images = np.random.default_rng(0).random((3, size, size, 3), dtype=np.float32)
texts = tf.constant(json.loads(texts))
results = {}
for index, folder in enumerate(folders):
    module = tf.saved_model.load(folder)
    if folder.endswith("text_encoder"):
        results[f"{index}"] = module(texts)["pooled_output"].numpy()
        results[f"{index}_serving"] = module.signatures["serving_default"](texts=texts)[
            "sequence_output"].numpy()
    else:
        results[f"{index}"] = module(images).numpy()
        results[f"{index}_serving"] = module.signatures["serving_default"](
            images=tf.constant(images))["default"].numpy()
project = {"models", "layers", "datasets", "publishing", "serving", "tasks", "keras_hub"}
assert not project & set(sys.modules), project & set(sys.modules)
np.savez(out, **results)
"""


@pytest.mark.slow
def test_published_encoders_run_in_a_process_that_imports_only_tensorflow(published, tmp_path):
    folders = [
        published["dual_encoder"].folders["image"],
        published["dual_encoder"].folders["text"],
        published["show_and_tell"].folders["image"],
    ]
    out = tmp_path / "outputs.npz"
    completed = subprocess.run(
        [sys.executable, "-I", "-c", TF_ONLY_SCRIPT, str(out), str(OPTIONS.image_size)]
        + [json.dumps(TEXTS)]
        + [str(folder) for folder in folders],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = np.load(out)
    batch = images()
    text_outputs = published["dual_encoder"].backbone("text")(
        published["dual_encoder"].vocabulary.encode(tf.constant(TEXTS), OPTIONS.sequence_length)
    )
    expected = [
        published["dual_encoder"].backbone("image")(batch)["pooled"],
        text_outputs["pooled"],
        published["show_and_tell"].backbone("image")(batch)["pooled"],
    ]
    served = [expected[0], text_outputs["sequence"], expected[2]]
    for index in range(3):
        np.testing.assert_allclose(results[f"{index}"], expected[index], atol=1e-5)
        np.testing.assert_allclose(results[f"{index}_serving"], served[index], atol=1e-5)


TF_KERAS_SCRIPT = """
import json
import sys
import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
import tf_keras

image_folder, text_folder, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
assert tf.keras.__name__.startswith("tf_keras"), tf.keras.__name__
image = hub.KerasLayer(image_folder, trainable=True)
text = hub.KerasLayer(text_folder, trainable=True, output_key="pooled_output")
images = tf_keras.Input((size, size, 3))
texts = tf_keras.Input((), dtype=tf.string)
image_logit = tf_keras.layers.Dense(1)(image(images))
text_logit = tf_keras.layers.Dense(1)(text(texts))
model = tf_keras.Model([images, texts], tf_keras.layers.Add()([image_logit, text_logit]))
model.compile(tf_keras.optimizers.Adam(1e-3), "mse")
weights = image.trainable_weights + text.trainable_weights
before = [w.numpy().copy() for w in weights]
moving = [w for w in image.non_trainable_weights if "moving_mean" in w.name]
moving_before = [w.numpy().copy() for w in moving]
rng = np.random.default_rng(0)
x = rng.random((8, size, size, 3), dtype=np.float32)
s = np.array(["a red circle", "a blue square"] * 4)
history = model.fit([x, s], np.ones((8, 1), np.float32), epochs=3, batch_size=4, verbose=0)
print(json.dumps({
    "trainable": len(weights),
    "changed": sum(not np.allclose(w.numpy(), b) for w, b in zip(weights, before)),
    "moving": len(moving),
    "moving_changed": sum(not np.allclose(w.numpy(), b) for w, b in zip(moving, moving_before)),
    "losses": history.history["loss"],
}))
"""


@pytest.mark.slow
def test_tf_keras_fine_tunes_the_published_encoders_with_hub_keras_layer(published):
    folders = published["dual_encoder"].folders
    completed = subprocess.run(
        [sys.executable, "-I", "-c", TF_KERAS_SCRIPT]
        + [str(folders["image"]), str(folders["text"]), str(OPTIONS.image_size)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_USE_LEGACY_KERAS": "1"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    image = hub.load(str(folders["image"]))
    text = hub.load(str(folders["text"]))
    assert result["trainable"] == len(image.trainable_variables) + len(text.trainable_variables)
    assert result["changed"] == result["trainable"]  # Adam moved every weight
    assert result["moving"] > 0 and result["moving_changed"] == result["moving"]
    assert all(np.isfinite(result["losses"]))


def run_main(capsys, *args) -> tuple[int, str, str]:
    code = publish_encoders.main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow
def test_the_command_publishes_and_prints_the_train_flags(published, tmp_path, capsys):
    export = published["dual_encoder"]
    output = tmp_path / "hub"
    # A model folder means its newest version, as in predict.py.
    code, out, err = run_main(capsys, export.version_dir.parent, "--output", output)
    assert code == 0, err
    assert sorted(path.name for path in output.iterdir()) == ["image_encoder", "text_encoder"]
    assert f"--image-encoder hub:{output / 'image_encoder'}" in out
    assert f"--text-encoder hub:{output / 'text_encoder'}" in out
    assert f"to {output / 'image_encoder'}" in out and f"to {output / 'text_encoder'}" in out

    code, out, err = run_main(capsys, export.version_dir, "--output", output)
    assert code == 2 and "is not empty" in err and str(output) in err

    only_image = tmp_path / "image_only"
    code, out, err = run_main(
        capsys, export.version_dir, "--output", only_image, "--encoders", "image"
    )
    assert code == 0, err
    assert [path.name for path in only_image.iterdir()] == ["image_encoder"]
    assert "--text-encoder" not in out


def test_the_command_refuses_an_encoder_the_model_lacks(published, tmp_path, capsys):
    output = tmp_path / "hub"
    version_dir = published["show_and_tell"].version_dir
    code, _, err = run_main(capsys, version_dir, "--output", output, "--encoders", "text")
    assert code == 2
    assert "'show_and_tell' has no text encoder" in err and "it has: image" in err
    assert not output.exists()
    code, _, err = run_main(capsys, version_dir, "--output", output, "--encoders", "audio")
    assert code == 2 and "'audio'" in err


def test_the_command_refuses_an_export_without_model_keras_and_a_bad_folder(
    published, tmp_path, capsys
):
    old = tmp_path / "old_export"
    shutil.copytree(published["dual_encoder"].version_dir, old)
    (old / "assets.extra" / "model.keras").unlink()
    code, _, err = run_main(capsys, old, "--output", tmp_path / "hub")
    assert code == 2 and "has no assets.extra/model.keras" in err and str(old) in err

    code, _, err = run_main(capsys, tmp_path / "missing", "--output", tmp_path / "hub")
    assert code == 2 and "does not exist" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run_main(capsys, tmp_path / "empty", "--output", tmp_path / "hub")
    assert code == 2 and "is not an export" in err
    assert not (tmp_path / "hub").exists()


@pytest.mark.slow
def test_hub_layer_fine_tunes_a_published_image_encoder_in_a_keras_3_model(published):
    from layers.hub_layer import HubLayer

    export = published["show_and_tell"]
    size = OPTIONS.image_size
    encoder = HubLayer(str(export.folders["image"]), trainable=True, name="published")
    images_input = keras.Input((size, size, 3), name="image")
    model = keras.Model(images_input, keras.layers.Dense(1)(encoder(images_input)))
    batch = images(8)
    expected = export.backbone("image")(batch, training=False)["pooled"]
    np.testing.assert_allclose(encoder(batch), expected, atol=1e-5)
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    assert encoder.trainable_weights
    before = [weight.numpy().copy() for weight in encoder.trainable_weights]
    history = model.fit(batch, np.ones((8, 1), np.float32), epochs=3, batch_size=4, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    changed = [
        not np.allclose(weight.numpy(), old)
        for weight, old in zip(encoder.trainable_weights, before, strict=True)
    ]
    assert all(changed), f"{changed.count(False)} of {len(changed)} weights did not move"


def test_a_text_backbone_that_reads_strings_is_published_without_a_vocabulary(published, tmp_path):
    from layers.hub_layer import HubLayer

    folder = published["dual_encoder"].folders["text"]
    texts_input = keras.Input((), dtype="string", name="text")
    outputs = HubLayer(str(folder), trainable=True, name="encoder")(texts_input)
    backbone = keras.Model(
        texts_input,
        {"pooled": outputs["pooled_output"], "sequence": outputs["sequence_output"]},
        name="text_backbone",
    )
    module = TextEncoderModule(backbone)
    assert module.vocabulary is None and module.sequence_length == OPTIONS.sequence_length
    tf.saved_model.save(module, str(tmp_path / "again"))
    again, original = hub.load(str(tmp_path / "again")), hub.load(str(folder))
    texts = tf.constant(TEXTS)
    for key in ("default", "pooled_output", "sequence_output"):
        np.testing.assert_allclose(again(texts)[key], original(texts)[key], atol=1e-5)
    assert len(again.trainable_variables) == len(original.trainable_variables)
    assert not hasattr(again, "vocabulary_file")
