"""Image encoders by name: output contract, gradients, freezing, weights files, errors, saving."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.utils import file_utils

from layers import InferenceModeBackbone
from models.image_encoders import APPLICATIONS, IMAGE_ENCODERS, build_image_encoder

IMAGE_SIZE = 32
FEATURE_DIM = 8
# Grid cells at 32 pixels: the small CNN divides by 16, the keras.applications backbones by 32.
REGIONS = {name: 1 for name in IMAGE_ENCODERS} | {"small_cnn": 4}
PROJECTIONS = {"pooled_projection/kernel", "pooled_projection/bias"}
PROJECTIONS |= {"region_projection/kernel", "region_projection/bias"}
IMAGES = np.random.default_rng(0).random((2, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")


@pytest.fixture(scope="module")
def encoders():
    """One trainable, randomly initialised encoder per name, built on first use."""
    built = {}

    def get(name):
        if name not in built:
            built[name] = build_image_encoder(name, image_size=IMAGE_SIZE, feature_dim=FEATURE_DIM)
        return built[name]

    return get


def backbone_model(encoder):
    layer = encoder.get_layer("backbone")
    return layer.backbone if isinstance(layer, InferenceModeBackbone) else layer


def numpy_outputs(outputs):
    return [keras.ops.convert_to_numpy(value) for value in keras.tree.flatten(outputs)]


@pytest.mark.parametrize("name", IMAGE_ENCODERS)
def test_outputs_and_gradients(name, encoders):
    encoder = encoders(name)
    assert encoder.name == "image_backbone"
    assert [(tensor.name, tensor.dtype) for tensor in encoder.inputs] == [("image", "float32")]
    projections = [weight for weight in encoder.trainable_weights if "projection" in weight.path]
    assert len(projections) == 4
    with tf.GradientTape() as tape:
        outputs = encoder(IMAGES)
        loss = sum(keras.ops.mean(keras.ops.square(value)) for value in outputs.values())
    assert set(outputs) == {"pooled", "regions"}
    assert tuple(outputs["pooled"].shape) == (2, FEATURE_DIM)
    assert tuple(outputs["regions"].shape) == (2, REGIONS[name], FEATURE_DIM)
    assert all(value.dtype == "float32" for value in outputs.values())
    for weight, gradient in zip(projections, tape.gradient(loss, projections), strict=True):
        assert np.any(gradient.numpy() != 0), weight.path


@pytest.mark.parametrize("name", ["small_cnn", "vgg16"])
def test_weights_file_loads_into_a_new_frozen_build(name, encoders, tmp_path):
    source = backbone_model(encoders(name))
    path = str(tmp_path / "backbone.weights.h5")
    source.save_weights(path)
    encoder = build_image_encoder(
        name, image_size=IMAGE_SIZE, feature_dim=FEATURE_DIM, weights=path, trainable=False
    )
    assert isinstance(encoder.get_layer("backbone"), InferenceModeBackbone)
    # small_cnn's pooled vector is SmallCNNEncoder's own projection, frozen with it.
    projections = {weight for weight in PROJECTIONS if name != "small_cnn" or "region" in weight}
    assert {weight.path for weight in encoder.trainable_weights} == projections
    loaded = backbone_model(encoder)
    for expected, actual in zip(
        numpy_outputs(source(IMAGES * 255.0, training=False)),
        numpy_outputs(loaded(IMAGES * 255.0, training=False)),
        strict=True,
    ):
        assert np.abs(expected).max() > 1e-2
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def test_frozen_backbone_keeps_batch_norm_statistics_and_fine_tunes_in_inference_mode():
    encoder = build_image_encoder(
        "small_cnn", image_size=IMAGE_SIZE, feature_dim=FEATURE_DIM, trainable=False, dropout=0.5
    )
    backbone = backbone_model(encoder)
    targets = {"pooled": np.ones((2, FEATURE_DIM)), "regions": np.ones((2, 4, FEATURE_DIM))}

    def snapshot(weights):
        return {weight.path: keras.ops.convert_to_numpy(weight) for weight in weights}

    def train_step():
        encoder.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", run_eagerly=True)
        encoder.train_on_batch(IMAGES, targets)

    statistics = snapshot(backbone.non_trainable_weights)
    backbone_weights = snapshot(backbone.weights)
    projection = snapshot(encoder.get_layer("region_projection").weights)
    # Dropout and batch norm run in inference mode even in a training call.
    for in_training, in_inference in zip(
        numpy_outputs(encoder(IMAGES, training=True)),
        numpy_outputs(encoder(IMAGES, training=False)),
        strict=True,
    ):
        np.testing.assert_array_equal(in_training, in_inference)
    train_step()
    for path, value in snapshot(backbone.weights).items():
        np.testing.assert_array_equal(value, backbone_weights[path], err_msg=path)
    changed = snapshot(encoder.get_layer("region_projection").weights)
    assert any(np.any(changed[path] != value) for path, value in projection.items())

    # Unfrozen for fine-tuning, the backbone learns but batch norm keeps its statistics.
    encoder.get_layer("backbone").trainable = True
    train_step()
    for path, value in snapshot(backbone.non_trainable_weights).items():
        np.testing.assert_array_equal(value, statistics[path], err_msg=path)
    tuned = snapshot(backbone.trainable_weights)
    assert any(np.any(tuned[path] != backbone_weights[path]) for path in tuned)


def test_missing_weights_file_is_named(tmp_path):
    path = str(tmp_path / "missing.weights.h5")
    with pytest.raises(ValueError, match="missing.weights.h5"):
        build_image_encoder("resnet50", image_size=IMAGE_SIZE, weights=path)


def test_weights_file_of_another_encoder_is_rejected(encoders, tmp_path):
    path = str(tmp_path / "small_cnn.weights.h5")
    backbone_model(encoders("small_cnn")).save_weights(path)
    with pytest.raises(ValueError, match=r"small_cnn\.weights\.h5.*does not fit.*'vgg16'"):
        build_image_encoder("vgg16", image_size=IMAGE_SIZE, weights=path)


def test_imagenet_without_network_says_where_to_put_the_file(monkeypatch):
    requested = []

    def failed_download(fname, origin=None, **kwargs):
        """Raises the way keras' get_file does when the network is unreachable."""
        requested.append(fname)
        raise Exception(
            f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known"
        )

    monkeypatch.setattr(file_utils, "get_file", failed_download)
    with pytest.raises(ValueError) as error:
        build_image_encoder("vgg16", image_size=IMAGE_SIZE, weights="imagenet")
    message = str(error.value)
    assert "ImageNet weights for image encoder 'vgg16' could not be downloaded" in message
    assert os.path.join(".keras", "models") in message and "--image-weights PATH" in message
    assert requested == [APPLICATIONS["vgg16"][1]] and requested[0] in message


def test_efficientnet_imagenet_file_given_as_path_matches_the_imagenet_build(
    encoders, tmp_path, monkeypatch
):
    # Built with weights="imagenet", EfficientNet has an extra rescaling layer; an
    # ImageNet-derived file loaded from a path must give the same features without it.
    source = backbone_model(encoders("efficientnet_b0"))
    normalization = next(
        layer for layer in source.layers if isinstance(layer, keras.layers.Normalization)
    )
    original = normalization.get_weights()
    mean, variance = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225]) ** 2
    normalization.set_weights([mean, variance, np.array(0)])  # saved, not used in calls
    path = str(tmp_path / "efficientnetb0_notop.weights.h5")
    source.save_weights(path)
    normalization.set_weights(original)
    requested = []
    monkeypatch.setattr(
        file_utils, "get_file", lambda fname, *args, **kwargs: requested.append(fname) or path
    )

    def stem_features(weights):
        encoder = build_image_encoder(
            "efficientnet_b0", image_size=IMAGE_SIZE, feature_dim=FEATURE_DIM, weights=weights
        )
        # The first convolution: deeper, the random network's features fade to ~1e-5.
        backbone = encoder.get_layer("backbone")
        stem = keras.Model(backbone.input, backbone.get_layer("stem_conv").output)
        return keras.ops.convert_to_numpy(stem(encoder.get_layer("preprocessing")(IMAGES)))

    from_imagenet = stem_features("imagenet")
    assert np.abs(from_imagenet).max() > 1.0
    np.testing.assert_allclose(stem_features(path), from_imagenet, rtol=1e-4, atol=1e-4)
    assert requested == [APPLICATIONS["efficientnet_b0"][1]]


def test_small_cnn_has_no_imagenet_weights():
    with pytest.raises(ValueError, match="No ImageNet weights exist for image encoder 'small_cnn'"):
        build_image_encoder("small_cnn", weights="imagenet")


def test_unknown_name_lists_the_encoders():
    with pytest.raises(ValueError, match="'resnet18'.*efficientnet_b0"):
        build_image_encoder("resnet18")


@pytest.mark.parametrize(
    ("name", "image_size"), [("small_cnn", 15), ("resnet50", 31), ("mobilenet_v3_small", 16)]
)
def test_image_size_below_the_minimum_is_rejected(name, image_size):
    with pytest.raises(ValueError, match=f"image_size={image_size}"):
        build_image_encoder(name, image_size=image_size)


@pytest.mark.parametrize(
    ("arguments", "value"),
    [({"feature_dim": 0}, "feature_dim=0"), ({"dropout": 1.0}, "dropout=1.0")],
)
def test_bad_sizes_are_rejected(arguments, value):
    with pytest.raises(ValueError, match=value):
        build_image_encoder("small_cnn", **arguments)


@pytest.mark.parametrize(("name", "trainable"), [("small_cnn", True), ("vgg16", False)])
def test_keras_save_and_load_round_trip(name, trainable, tmp_path):
    encoder = build_image_encoder(
        name, image_size=IMAGE_SIZE, feature_dim=FEATURE_DIM, trainable=trainable, dropout=0.2
    )
    path = tmp_path / "encoder.keras"
    encoder.save(path)
    restored = keras.models.load_model(path)
    assert restored.name == "image_backbone"
    assert {weight.path for weight in restored.trainable_weights} == {
        weight.path for weight in encoder.trainable_weights
    }
    for expected, actual in zip(
        numpy_outputs(encoder(IMAGES)), numpy_outputs(restored(IMAGES)), strict=True
    ):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
