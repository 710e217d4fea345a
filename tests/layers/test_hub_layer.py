"""HubLayer: TF2 SavedModels from TF Hub as Keras 3 layers, called, fine-tuned, saved, exported."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from layers import HubLayer
from tests.layers import hub_test_modules as modules

ROOT = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(0)
IMAGES = RNG.random((8, modules.IMAGE_SIZE, modules.IMAGE_SIZE, 3)).astype("float32")
TARGETS = RNG.normal(size=(8, 2)).astype("float32")
# dtype=object: Keras' array adapter rejects fixed-width numpy strings ("Invalid dtype: str736").
SENTENCES = np.array(
    ["a small red square", "two blue circles", "", "one green triangle here"], dtype=object
)


def image_model(handle, trainable=True):
    images = keras.Input((modules.IMAGE_SIZE, modules.IMAGE_SIZE, 3), name="images")
    features = HubLayer(handle, trainable=trainable, name="hub")(images)
    return keras.Model(images, keras.layers.Dense(2, name="head")(features))


def values(variables):
    return [np.array(v) for v in variables]


def weight(layer, name):
    return next(w for w in layer.weights if w.name == name)


def test_output_equals_calling_the_module(image_module):
    module = tf.saved_model.load(image_module)
    model = image_model(image_module)
    assert tuple(model.get_layer("hub").output.shape) == (None, modules.IMAGE_FEATURES)
    np.testing.assert_allclose(model.get_layer("hub")(IMAGES), module(IMAGES), atol=1e-6)


def test_weights_are_the_module_variables_with_keras_names(image_module):
    layer = HubLayer(image_module, trainable=True)
    names = [w.name for w in layer.weights]
    assert names[0] == "conv2d_kernel"
    assert not any(":" in name or "/" in name for name in names)
    assert len(layer.trainable_weights) == 6
    moving = {w.name for w in layer.non_trainable_weights}
    assert moving == {"batch_norm_moving_mean", "batch_norm_moving_variance"}
    module_kernel = tf.saved_model.load(image_module).variables[0]
    np.testing.assert_array_equal(layer.weights[0], module_kernel)


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: keras.optimizers.Adam(0.02),
        lambda: keras.optimizers.AdamW(0.02, weight_decay=0.01),
        lambda: keras.optimizers.SGD(0.05, momentum=0.9),
    ],
    ids=["adam", "adamw", "sgd_momentum"],
)
def test_any_optimizer_fine_tunes_the_module(image_module, optimizer):
    model = image_model(image_module)
    hub = model.get_layer("hub")
    model.compile(optimizer(), "mse")
    before = values(hub.weights)
    loss_before = model.evaluate(IMAGES, TARGETS, verbose=0)
    model.fit(IMAGES, TARGETS, batch_size=4, epochs=8, verbose=0)
    assert model.evaluate(IMAGES, TARGETS, verbose=0) < loss_before
    changed = [not np.allclose(b, a) for b, a in zip(before, values(hub.weights), strict=True)]
    assert all(changed), [w.name for w, c in zip(hub.weights, changed, strict=True) if not c]


def test_gradients_reach_every_trainable_module_variable(image_module):
    layer = HubLayer(image_module, trainable=True)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(IMAGES, training=True) ** 2)
    gradients = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None and np.any(g.numpy()) for g in gradients)


def test_regularization_losses_join_model_losses_and_the_fitted_loss(image_module):
    trainable, frozen = image_model(image_module), image_model(image_module, trainable=False)
    trainable(IMAGES)
    frozen(IMAGES)
    kernel = tf.saved_model.load(image_module).variables[0]
    expected = modules.REGULARIZATION * np.sum(np.square(kernel.numpy()))
    assert len(trainable.losses) == 1
    np.testing.assert_allclose(trainable.losses[0], expected, rtol=1e-5)
    assert frozen.losses == []
    frozen.set_weights(trainable.get_weights())
    for model in (trainable, frozen):
        model.compile("sgd", "mse")
    gap = trainable.evaluate(IMAGES, TARGETS, verbose=0) - frozen.evaluate(
        IMAGES, TARGETS, verbose=0
    )
    np.testing.assert_allclose(gap, expected, rtol=1e-4)


def test_training_reaches_the_module_only_when_trainable(image_module):
    inference = tf.saved_model.load(image_module)(IMAGES, training=False).numpy()
    trainable = HubLayer(image_module, trainable=True)
    np.testing.assert_allclose(trainable(IMAGES, training=False), inference, atol=1e-6)
    first, second = trainable(IMAGES, training=True), trainable(IMAGES, training=True)
    assert not np.allclose(first, inference)
    assert not np.allclose(first, second)  # dropout is on
    assert np.any(weight(trainable, "batch_norm_moving_mean").numpy())  # batch norm updated

    frozen = HubLayer(image_module, trainable=False)
    np.testing.assert_allclose(frozen(IMAGES, training=True), inference, atol=1e-6)
    assert not np.any(weight(frozen, "batch_norm_moving_mean").numpy())


def test_training_is_not_passed_to_a_module_without_the_argument(text_module):
    module = tf.saved_model.load(text_module)
    layer = HubLayer(text_module, output_key="pooled_output", trainable=True)
    outputs = layer(tf.constant(SENTENCES), training=True)
    np.testing.assert_allclose(outputs, module(tf.constant(SENTENCES))["pooled_output"])


def test_frozen_layer_has_no_trainable_weights_and_fit_leaves_it(image_module):
    model = image_model(image_module, trainable=False)
    hub = model.get_layer("hub")
    assert hub.trainable_weights == []
    assert len(hub.non_trainable_weights) == 8
    assert len(model.trainable_weights) == 2  # the head's kernel and bias
    before, head_before = values(hub.weights), values(model.get_layer("head").weights)
    model.compile(keras.optimizers.Adam(0.02), "mse")
    model.fit(IMAGES, TARGETS, batch_size=4, epochs=2, verbose=0)
    for b, a in zip(before, values(hub.weights), strict=True):
        np.testing.assert_array_equal(b, a)
    assert not np.allclose(head_before[0], model.get_layer("head").weights[0])
    hub.trainable = True  # a second phase fine-tunes the module
    assert len(hub.trainable_weights) == 6


def test_output_key_picks_one_output_and_no_key_returns_the_dict(text_module):
    module = tf.saved_model.load(text_module)
    expected = module(tf.constant(SENTENCES))
    text = keras.Input((), dtype="string")
    pooled = HubLayer(text_module, output_key="pooled_output")(text)
    assert tuple(pooled.shape) == (None, modules.TEXT_DIM)
    both = HubLayer(text_module)(text)
    assert sorted(both) == ["pooled_output", "sequence_output"]
    assert tuple(both["sequence_output"].shape) == (None, modules.SEQUENCE_LENGTH, modules.TEXT_DIM)
    model = keras.Model(text, {"pooled": pooled, **both})
    outputs = model.predict(SENTENCES, verbose=0)
    np.testing.assert_allclose(outputs["pooled"], expected["pooled_output"], atol=1e-6)
    np.testing.assert_allclose(outputs["sequence_output"], expected["sequence_output"], atol=1e-6)


def test_missing_output_key_names_it_and_the_available_ones(text_module):
    expected = r"no output 'embedding' \(available: \['pooled_output', 'sequence_output'\]\)"
    with pytest.raises(ValueError, match=expected):
        HubLayer(text_module, output_key="embedding")(keras.Input((), dtype="string"))


def test_signature_takes_a_tensor_or_a_dict(text_module):
    embed = tf.saved_model.load(text_module).signatures["embed"]
    expected = embed(text=tf.constant(SENTENCES))["embedding"]
    layer = HubLayer(text_module, signature="embed", output_key="embedding")
    assert layer.input_specs() == {"text": tf.TensorSpec([None], tf.string, name="text")}
    np.testing.assert_allclose(layer(tf.constant(SENTENCES)), expected)
    np.testing.assert_allclose(layer({"text": tf.constant(SENTENCES)}), expected)
    text = keras.Input((), dtype="string", name="text")
    assert tuple(layer(text).shape) == (None, modules.TEXT_DIM)
    with pytest.raises(ValueError, match=r"'nope'.*\['embed'"):
        HubLayer(text_module, signature="nope")


def test_dict_of_int_tensors_feeds_a_bert_style_encoder(encoder_module):
    module = tf.saved_model.load(encoder_module)
    batch = modules.encoder_inputs()
    layer = HubLayer(encoder_module, trainable=True)
    specs = layer.input_specs()
    assert sorted(specs) == ["input_mask", "input_type_ids", "input_word_ids"]
    assert specs["input_word_ids"].shape.as_list() == [None, modules.SEQUENCE_LENGTH]
    inputs = {
        name: keras.Input((modules.SEQUENCE_LENGTH,), dtype="int32", name=name) for name in batch
    }
    outputs = layer(inputs)
    assert tuple(outputs["pooled_output"].shape) == (None, modules.TEXT_DIM)
    model = keras.Model(inputs, outputs["pooled_output"])
    expected = module(batch)["pooled_output"]
    np.testing.assert_allclose(model.predict(batch, verbose=0), expected, atol=1e-6)
    as_int64 = {name: value.astype("int64") for name, value in batch.items()}
    np.testing.assert_allclose(layer(as_int64)["pooled_output"], expected, atol=1e-6)


def test_string_inputs_train_a_text_classifier(text_module):
    text = keras.Input((), dtype="string")
    features = HubLayer(text_module, output_key="pooled_output", trainable=True)(text)
    model = keras.Model(text, keras.layers.Dense(1)(features))
    model.compile(keras.optimizers.Adam(0.05), "mse")
    labels = np.array([[1.0], [0.0], [0.0], [1.0]], "float32")
    loss_before = model.evaluate(SENTENCES, labels, verbose=0)
    model.fit(SENTENCES, labels, epochs=5, verbose=0)
    assert model.evaluate(SENTENCES, labels, verbose=0) < loss_before


def test_mixed_bfloat16_feeds_the_module_float32(image_module, mixed_bfloat16):
    module = tf.saved_model.load(image_module)
    model = image_model(image_module)
    hub = model.get_layer("hub")
    assert hub.compute_dtype == "float32"
    assert model.get_layer("head").compute_dtype == "bfloat16"
    assert hub.output.dtype == "float32"
    bfloat_images = tf.cast(IMAGES, tf.bfloat16)
    expected = module(tf.cast(bfloat_images, tf.float32))
    np.testing.assert_allclose(hub(bfloat_images), expected, atol=1e-5)
    model.compile(keras.optimizers.Adam(0.02), "mse")
    before = values(hub.trainable_weights)
    model.fit(IMAGES, TARGETS, batch_size=4, epochs=1, verbose=0)
    assert not np.allclose(before[0], hub.trainable_weights[0])


MIRRORED_SCRIPT = """
import sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from layers import HubLayer

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    images = keras.Input((8, 8, 3))
    hub = HubLayer(sys.argv[1], trainable=True)
    model = keras.Model(images, keras.layers.Dense(2)(hub(images)))
    model.compile(keras.optimizers.Adam(0.02), "mse")
assert strategy.num_replicas_in_sync == 2
assert all(isinstance(w.value, tf.distribute.DistributedValues) for w in hub.weights)
rng = np.random.default_rng(0)
x, y = rng.random((8, 8, 8, 3), dtype="float32"), rng.random((8, 2), dtype="float32")
before = [w.numpy() for w in hub.trainable_weights]
model.fit(x, y, batch_size=4, epochs=2, verbose=0)
changed = [not np.allclose(b, w.numpy()) for b, w in zip(before, hub.trainable_weights)]
assert all(changed), changed
print("MIRRORED_OK")
"""


@pytest.mark.slow
def test_mirrored_strategy_distributes_and_trains_the_module(image_module):
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, image_module],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MIRRORED_OK" in result.stdout


def test_config_round_trip(text_module):
    layer = HubLayer(
        text_module, signature="embed", output_key="embedding", arguments={}, name="embedder"
    )
    config = layer.get_config()
    json.dumps(config)
    assert config["handle"] == text_module
    assert (config["signature"], config["output_key"]) == ("embed", "embedding")
    assert (config["arguments"], config["trainable"]) == ({}, False)
    clone = HubLayer.from_config(config)
    assert clone.get_config() == config
    np.testing.assert_allclose(clone(tf.constant(SENTENCES)), layer(tf.constant(SENTENCES)))


def test_keras_file_restores_fine_tuned_weights_in_safe_mode(image_module, tmp_path):
    model = image_model(image_module)
    model.compile(keras.optimizers.Adam(0.02), "mse")
    model.fit(IMAGES, TARGETS, batch_size=4, epochs=2, verbose=0)
    path = tmp_path / "hub_model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    tuned, original = model.get_layer("hub").weights, HubLayer(image_module).weights
    restored = loaded.get_layer("hub").weights
    for t, r, o in zip(tuned, restored, original, strict=True):
        np.testing.assert_array_equal(t, r)
        assert not np.array_equal(r, o)
    np.testing.assert_allclose(loaded.predict(IMAGES, verbose=0), model.predict(IMAGES, verbose=0))


def test_a_relative_handle_is_stored_absolute_so_the_model_reloads_anywhere(
    image_module, tmp_path, monkeypatch
):
    shutil.copytree(image_module, tmp_path / "modules" / "image")
    monkeypatch.chdir(tmp_path)
    model = image_model(os.path.join("modules", "image"))
    assert model.get_layer("hub").get_config()["handle"] == str(tmp_path / "modules" / "image")
    model.save(tmp_path / "model.keras")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.predict(IMAGES, verbose=0), model.predict(IMAGES, verbose=0))


def test_a_model_with_a_hub_module_is_never_compiled_with_xla(text_module):
    texts = keras.Input((), dtype="string")
    features = HubLayer(text_module, output_key="pooled_output")(texts)
    model = keras.Model(texts, keras.layers.Dense(1)(features))
    with pytest.warns(UserWarning, match="doesn't support `jit_compile=True`"):
        model.compile("adam", "mse", jit_compile=True)
    assert model.jit_compile is False


RELOAD_SCRIPT = """
import sys
import numpy as np
import tensorflow as tf

export, images, expected = sys.argv[1:]
serve = tf.saved_model.load(export).signatures["serving_default"]
scores = serve(images=tf.constant(np.load(images)))["scores"].numpy()
np.testing.assert_allclose(scores, np.load(expected), rtol=1e-5, atol=1e-6)
assert not any(name.split(".")[0] in ("layers", "tensorflow_hub") for name in sys.modules)
print("RELOAD_OK")
"""


class _Serving(tf.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
    def serve(self, images):
        return {"scores": self.model(images, training=False)}


@pytest.mark.slow
def test_export_reloads_in_a_fresh_tensorflow_process(image_module, tmp_path):
    model = image_model(image_module)
    kernel = model.get_layer("hub").weights[0]
    kernel.assign(kernel * 1.5)  # the export must carry the tuned values, not the module's
    serving = _Serving(model)
    export = tmp_path / "export"
    tf.saved_model.save(serving, str(export), signatures={"serving_default": serving.serve})
    np.save(tmp_path / "images.npy", IMAGES)
    np.save(tmp_path / "expected.npy", serving.serve(tf.constant(IMAGES))["scores"].numpy())
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            RELOAD_SCRIPT,
            str(export),
            *(str(tmp_path / n) for n in ("images.npy", "expected.npy")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RELOAD_OK" in result.stdout


def test_input_specs_and_output_shapes_without_calling(image_module, encoder_module):
    image_layer = HubLayer(Path(image_module))
    spec = image_layer.input_specs()
    assert spec.shape.as_list() == [None, modules.IMAGE_SIZE, modules.IMAGE_SIZE, 3]
    assert spec.dtype == tf.float32
    image_shape = (None, modules.IMAGE_SIZE, modules.IMAGE_SIZE, 3)
    assert tuple(image_layer.compute_output_shape(image_shape)) == (None, modules.IMAGE_FEATURES)
    encoder_layer = HubLayer(encoder_module, output_key="sequence_output")
    shapes = {name: (2, modules.SEQUENCE_LENGTH) for name in encoder_layer.input_specs()}
    expected = (2, modules.SEQUENCE_LENGTH, modules.TEXT_DIM)
    assert tuple(encoder_layer.compute_output_shape(shapes)) == expected


def test_wrong_input_shape_names_the_handle_and_the_expected_spec(image_module):
    with pytest.raises(ValueError, match=r"cannot take inputs.*expects.*8, 8, 3"):
        HubLayer(image_module)(keras.Input((16, 16, 3)))
