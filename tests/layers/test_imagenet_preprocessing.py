"""ImageNetPreprocessing: Keras' reference scaling, config and `.keras` round trips, gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from layers.imagenet_preprocessing import MODES, ImageNetPreprocessing

IMAGES = np.random.default_rng(0).random((2, 5, 4, 3)).astype("float32")


@pytest.mark.parametrize("mode", MODES)
def test_matches_keras_preprocess_input_on_pixels(mode):
    expected = keras.applications.imagenet_utils.preprocess_input(IMAGES * 255.0, mode=mode)
    outputs = ImageNetPreprocessing(mode=mode)(IMAGES)
    assert tuple(outputs.shape) == IMAGES.shape
    np.testing.assert_allclose(keras.ops.convert_to_numpy(outputs), expected, atol=1e-4)


def test_caffe_mode_reverses_channels():
    red = np.zeros((1, 1, 1, 3), "float32")
    red[..., 0] = 1.0
    outputs = keras.ops.convert_to_numpy(ImageNetPreprocessing(mode="caffe")(red))
    np.testing.assert_allclose(outputs[0, 0, 0], [-103.939, -116.779, 255.0 - 123.68], atol=1e-4)


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="'bgr'"):
        ImageNetPreprocessing(mode="bgr")


def test_config_round_trip():
    layer = ImageNetPreprocessing(mode="torch", name="preprocessing")
    restored = ImageNetPreprocessing.from_config(layer.get_config())
    assert restored.mode == "torch" and restored.name == "preprocessing"


def test_keras_save_and_load_round_trip(tmp_path):
    images = keras.Input((5, 4, 3))
    model = keras.Model(images, ImageNetPreprocessing(mode="caffe")(images))
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(
        restored.predict(IMAGES, verbose=0), model.predict(IMAGES, verbose=0)
    )


@pytest.mark.parametrize("mode", MODES)
def test_gradient_flows_to_the_images(mode):
    images = tf.Variable(IMAGES)
    with tf.GradientTape() as tape:
        loss = keras.ops.sum(ImageNetPreprocessing(mode=mode)(images))
    gradient = tape.gradient(loss, images)
    assert gradient is not None and np.all(np.abs(gradient.numpy()) > 0)
