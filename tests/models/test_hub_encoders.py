"""hub:HANDLE encoders: our image and text contracts around TF Hub modules, in every model."""

import dataclasses
import inspect

import keras
import numpy as np
import pytest
import tensorflow as tf

from layers import HubLayer
from models import build_model, get_model_spec, model_names
from models.hub_encoders import hub_handle, resolve_image_size
from models.image_encoders import build_image_encoder
from models.text_encoders import build_text_encoder
from tasks import get_task
from tasks.options import TaskOptions
from tests.layers import hub_test_modules as modules
from tests.models.test_registry_models import TEXT_ENCODER_MODELS, shapes_split

IMAGE_SIZE = modules.IMAGE_SIZE  # the image module fixes 8x8 in its signature
TEXTS = tf.constant(["a red circle", "is there a blue square?"])
# The loss on the trained batches must end below this fraction of its start. The tiny
# modules leave some models little to learn (image_only: an image alone barely predicts
# the label; the retrieval models: batches of 8): over seeds 0-4, after 8 epochs of 5
# steps, image_only ended at 0.89-0.95x, dual_encoder at 0.81-0.96x, most others < 0.8x.
LOSS_BAR = 0.98


@pytest.fixture(scope="module")
def hub_modules(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hub")
    return {
        "image": modules.write_image_module(folder / "image"),
        "text": modules.write_text_module(folder / "text"),
    }


def random_images(batch=2, size=IMAGE_SIZE):
    return np.random.default_rng(0).uniform(size=(batch, size, size, 3)).astype("float32")


def test_hub_names_are_parsed_and_an_empty_handle_is_refused():
    assert hub_handle("hub:https://tfhub.dev/a/b/1") == "https://tfhub.dev/a/b/1"
    assert hub_handle("small_cnn") is None and hub_handle(None) is None
    with pytest.raises(ValueError, match="names no handle"):
        hub_handle("hub:")


def test_a_hub_image_module_fills_the_image_encoder_contract(hub_modules):
    encoder = build_image_encoder(
        "hub:" + hub_modules["image"], image_size=IMAGE_SIZE, feature_dim=7
    )
    outputs = encoder(random_images(3))
    assert tuple(outputs["pooled"].shape) == (3, 7)
    assert tuple(outputs["regions"].shape) == (3, 1, 7)  # a feature vector is one region
    backbone = encoder.get_layer("backbone")
    assert isinstance(backbone, HubLayer) and backbone.trainable_weights


def test_a_frozen_hub_image_module_has_no_trainable_weights(hub_modules):
    encoder = build_image_encoder(
        "hub:" + hub_modules["image"], image_size=IMAGE_SIZE, feature_dim=7, trainable=False
    )
    assert not encoder.get_layer("backbone").trainable_weights
    assert encoder.trainable_weights  # the projections still train


def test_the_input_range_rescales_our_unit_images(hub_modules):
    handle = hub_modules["image"]
    encoder = build_image_encoder(
        "hub:" + handle, image_size=IMAGE_SIZE, feature_dim=7, hub_input_range="minus1to1"
    )
    images = random_images()
    module_output = encoder.get_layer("backbone")(images * 2.0 - 1.0)
    pooled = encoder.get_layer("pooled_projection")(module_output)
    np.testing.assert_allclose(encoder(images)["pooled"], pooled, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="hub-input-range"):
        build_image_encoder("hub:" + handle, image_size=8, feature_dim=7, hub_input_range="0to2")


def test_image_weights_do_not_apply_to_a_hub_module(hub_modules):
    with pytest.raises(ValueError, match="brings its own weights"):
        build_image_encoder("hub:" + hub_modules["image"], image_size=8, weights="imagenet")


def test_the_image_size_comes_from_the_module_signature(hub_modules):
    name = "hub:" + hub_modules["image"]
    assert resolve_image_size(name, None, 64) == IMAGE_SIZE
    assert resolve_image_size(name, IMAGE_SIZE, 64) == IMAGE_SIZE
    with pytest.raises(ValueError, match=r"takes 8x8 images .* --image-size 32"):
        resolve_image_size(name, 32, 64)
    assert resolve_image_size("small_cnn", None, 64) == 64
    assert resolve_image_size(None, 48, 64) == 48


def test_a_hub_text_module_reads_raw_strings(hub_modules):
    encoder = build_text_encoder("hub:" + hub_modules["text"], vocabulary_size=1, sequence_length=1)
    assert encoder.input.dtype == "string" and encoder.input.name == "text"
    outputs = encoder(tf.constant(["a red circle", "two blue squares on top"]))
    assert tuple(outputs["pooled"].shape) == (2, modules.TEXT_DIM)
    assert tuple(outputs["sequence"].shape) == (2, modules.SEQUENCE_LENGTH, modules.TEXT_DIM)
    assert outputs["mask"].dtype == "bool" and bool(np.all(outputs["mask"]))


def test_a_missing_output_key_names_the_keys_there_are(hub_modules):
    with pytest.raises(ValueError, match=r"\['pooled_output', 'sequence_output'\]; .*'nope'"):
        build_text_encoder(
            "hub:" + hub_modules["text"],
            vocabulary_size=1,
            sequence_length=1,
            hub_output_key="nope",
        )


def test_a_frozen_hub_text_module_has_no_trainable_weights(hub_modules):
    encoder = build_text_encoder(
        "hub:" + hub_modules["text"], vocabulary_size=1, sequence_length=1, trainable=False
    )
    assert encoder.get_layer("encoder").weights and not encoder.trainable_weights


@pytest.mark.parametrize("name", sorted(TEXT_ENCODER_MODELS))
def test_every_model_with_a_text_encoder_freezes_its_hub_text_module(name, hub_modules):
    spec = get_model_spec(name)
    arguments = {"vocabulary_size": 20, "sequence_length": 8, "image_size": 16}
    if "num_classes" in inspect.signature(spec.builder).parameters:
        arguments["num_classes"] = 3
    model = build_model(
        spec,
        arguments,
        {"text_encoder": "hub:" + hub_modules["text"], "freeze_text_encoder": True},
    )
    (text_module,) = [layer for layer in nested(model) if layer.name == "encoder"]
    assert isinstance(text_module, HubLayer) and text_module.weights
    assert not text_module.trainable and not text_module.trainable_weights
    assert model.trainable_weights  # the rest of the model still trains


def test_only_a_hub_text_encoder_can_be_frozen():
    with pytest.raises(ValueError, match="--freeze-text-encoder applies to a hub: text encoder"):
        build_text_encoder("lstm", vocabulary_size=10, sequence_length=4, trainable=False)


def test_a_preprocessor_needs_a_hub_text_encoder():
    with pytest.raises(ValueError, match="--text-preprocessor applies to a hub"):
        build_text_encoder("lstm", vocabulary_size=10, sequence_length=4, preprocessor="hub:x")


@pytest.mark.parametrize(
    "name, frozen",
    [(name, False) for name in sorted(TEXT_ENCODER_MODELS)] + [("fusion_classifier", True)],
)
def test_every_model_with_a_text_encoder_trains_on_a_hub_text_module(
    name, frozen, hub_modules, tiny_shapes_world
):
    spec = get_model_spec(name)
    task = get_task(spec.task)
    options = TaskOptions(image_size=IMAGE_SIZE, batch_size=8, sequence_length=8, raw_text=True)
    train = shapes_split(spec.task, tiny_shapes_world)
    vocabulary = task.build_vocabulary(train, options)
    user_options = {"text_encoder": "hub:" + hub_modules["text"]}
    if name != "text_only":
        user_options["image_encoder"] = "hub:" + hub_modules["image"]
    if frozen:
        user_options["freeze_text_encoder"] = True
    keras.utils.set_random_seed(0)
    model = build_model(spec, task.model_arguments(vocabulary, options), user_options)
    assert "text" in model.input and "tokens" not in model.input
    task.compile_model(model, 3e-3, options)
    batches = two_fixed_batches(task, train, vocabulary, options)
    before, after, moved = fit_and_watch_hub_weights(model, batches)
    assert after < LOSS_BAR * before, (before, after)
    # Each hub module is fine-tuned: all its weights change; a frozen text module
    # (the layer "encoder") runs in inference mode and none of its weights move.
    assert len(moved) == (1 if name == "text_only" else 2)
    for layer_name, changed in moved.items():
        fixed = frozen and layer_name == "encoder"
        assert changed and all(change != fixed for change in changed), moved

    # Evaluation and every serving signature feed the model raw strings too.
    test = shapes_split(spec.task, tiny_shapes_world, "test")
    result = task.evaluate(model, test, vocabulary, train, options)
    assert result.metrics and all(np.isfinite(list(result.metrics.values())))
    module = task.serving_module(model, vocabulary, options)
    image = tf.io.encode_png(np.full((12, 12, 3), 200, np.uint8))
    for signature_name, signature in module.signatures().items():
        inputs = signature.input_signature
        feed = [
            tf.stack([image, image]) if spec.name == "image_bytes" else TEXTS for spec in inputs
        ]
        outputs = signature(*feed)
        assert all(value.shape[0] == 2 for value in outputs.values()), signature_name


def fit_and_watch_hub_weights(model, batches, epochs=8):
    """Fits a few steps; returns the loss on `batches` before and after, and, per HubLayer,
    whether each of its weights (batch-norm statistics included) changed.

    The loss is judged in inference mode: the image module's 50% dropout on its 4 pooled
    channels made the training loss too noisy to compare epochs (a CI run ended 0.0004
    above its start)."""
    hub_layers = [layer for layer in nested(model) if isinstance(layer, HubLayer)]
    before = {layer.name: [np.array(w) for w in layer.weights] for layer in hub_layers}
    loss_before = model.evaluate(batches, verbose=0, return_dict=True)["loss"]
    model.fit(batches.repeat(), steps_per_epoch=5, epochs=epochs, verbose=0)
    loss_after = model.evaluate(batches, verbose=0, return_dict=True)["loss"]
    moved = {
        layer.name: [
            not np.array_equal(old, np.array(new))
            for old, new in zip(before[layer.name], layer.weights, strict=True)
        ]
        for layer in hub_layers
    }
    return loss_before, loss_after, moved


def two_fixed_batches(task, train, vocabulary, options):
    """The same two batches on every run (a deterministic pipeline), cached."""
    pipeline = dataclasses.replace(options, deterministic=True)
    return task.make_dataset(train, vocabulary, pipeline, training=True).take(2).cache()


# The models with an image encoder but no text encoder: the others train on a hub image
# module together with a hub text module above.
IMAGE_ONLY_ENCODER_MODELS = sorted(set(model_names()) - TEXT_ENCODER_MODELS)


@pytest.mark.parametrize(
    "name, frozen",
    [(name, False) for name in IMAGE_ONLY_ENCODER_MODELS] + [("show_and_tell", True)],
)
def test_every_model_with_an_image_encoder_trains_on_a_hub_image_module(
    name, frozen, hub_modules, tiny_shapes_world
):
    spec = get_model_spec(name)
    task = get_task(spec.task)
    options = TaskOptions(image_size=IMAGE_SIZE, batch_size=8, sequence_length=8)
    train = shapes_split(spec.task, tiny_shapes_world)
    vocabulary = task.build_vocabulary(train, options)
    user_options = {"image_encoder": "hub:" + hub_modules["image"]}
    if frozen:
        user_options["freeze_image_encoder"] = True
    keras.utils.set_random_seed(0)
    model = build_model(spec, task.model_arguments(vocabulary, options), user_options)
    task.compile_model(model, 3e-3, options)
    # Two fixed batches to memorise: image_only cannot learn the shapes matching label
    # itself (neither modality alone predicts it), only these 16 examples, which takes longer.
    batches = two_fixed_batches(task, train, vocabulary, options)
    before, after, moved = fit_and_watch_hub_weights(model, batches)
    assert after < LOSS_BAR * before, (before, after)
    assert list(moved) == ["backbone"] and moved["backbone"]
    # Frozen: inference mode, so not even the batch-norm statistics move.
    assert all(changed != frozen for changed in moved["backbone"]), moved
    module = task.serving_module(model, vocabulary, options)
    image = tf.io.encode_png(np.full((12, 12, 3), 200, np.uint8))
    for signature_name, signature in module.signatures().items():
        inputs = signature.input_signature
        feed = [tf.stack([image, image]) if i.name == "image_bytes" else TEXTS for i in inputs]
        outputs = signature(*feed)
        assert all(value.shape[0] == 2 for value in outputs.values()), signature_name


def nested(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from nested(layer)
