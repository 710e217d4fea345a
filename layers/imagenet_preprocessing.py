"""Scales [0, 1] RGB images the way ImageNet-pretrained Keras applications expect."""

import keras
from keras import layers

# Per-mode constants, as in keras.applications.imagenet_utils.preprocess_input.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN_RGB = (0.485, 0.456, 0.406)
TORCH_STDDEV_RGB = (0.229, 0.224, 0.225)
MODES = ("caffe", "tf", "torch")


@keras.saving.register_keras_serializable(package="mmzoo")
class ImageNetPreprocessing(layers.Layer):
    """Maps float RGB images in [0, 1] to the input scale of an ImageNet backbone.

    The modes are those of `keras.applications.imagenet_utils.preprocess_input`,
    applied to images already scaled to [0, 1] (what the zoo's pipelines produce)
    rather than to 0..255 pixels:

    - "caffe" (ResNet50, VGG16): RGB -> BGR, times 255, minus the ImageNet
      channel means; no scaling to unit variance.
    - "tf" (Xception, InceptionV3, MobileNetV2): scaled to [-1, 1].
    - "torch" (DenseNet): minus the ImageNet channel means, divided by their
      standard deviations.

    Unlike a `Lambda`, the layer is saved and reloaded by name with `.keras` files.

    Args:
        mode: one of "caffe", "tf", "torch".

    Call arguments:
        images: float [B, H, W, 3] RGB in [0, 1], channels last.

    Returns:
        float [B, H, W, 3] in the backbone's input scale.

    Example:
        >>> preprocessing = ImageNetPreprocessing(mode="tf")
        >>> keras.ops.convert_to_numpy(preprocessing(keras.ops.ones((1, 2, 2, 3))))[0, 0, 0]
        array([1., 1., 1.], dtype=float32)
    """

    def __init__(self, mode: str = "caffe", **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"ImageNetPreprocessing: mode must be one of {MODES}, got {mode!r}.")
        self.mode = mode

    def call(self, images):
        if self.mode == "tf":
            return images * 2.0 - 1.0
        if self.mode == "torch":
            mean = keras.ops.convert_to_tensor(TORCH_MEAN_RGB, dtype=images.dtype)
            stddev = keras.ops.convert_to_tensor(TORCH_STDDEV_RGB, dtype=images.dtype)
            return (images - mean) / stddev
        mean = keras.ops.convert_to_tensor(CAFFE_MEAN_BGR, dtype=images.dtype)
        return keras.ops.flip(images, axis=-1) * 255.0 - mean

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(mode=self.mode)
        return config
