"""A wrapper that always runs its backbone in inference mode."""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="mmzoo")
class InferenceModeBackbone(layers.Layer):
    """Runs a backbone model in inference mode, whatever the caller's `training` flag.

    The Keras transfer-learning guide calls a pretrained base as
    `base(x, training=False)` so that its batch norm keeps using the ImageNet
    statistics (and its dropout stays off) while the head trains, frozen or
    fine-tuned. In a Keras 3 functional model that recorded flag is overridden by
    the outer model's own `training` (as in `fit`), so the flag lives here, in a
    layer that saves and reloads with the model. Freezing is the usual `trainable`.

    Args:
        backbone: the model to run, e.g. a `keras.applications` model.

    Call arguments:
        images: the backbone's input.

    Returns:
        The backbone's output, computed with `training=False`.

    Example:
        >>> backbone = keras.applications.MobileNetV3Small(
        ...     include_top=False, weights=None, input_shape=(32, 32, 3)
        ... )
        >>> frozen = InferenceModeBackbone(backbone, trainable=False)
        >>> tuple(frozen(keras.ops.zeros((2, 32, 32, 3)), training=True).shape)
        (2, 1, 1, 576)
    """

    def __init__(self, backbone: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone

    def call(self, images):
        return self.backbone(images, training=False)

    def get_config(self):
        config = super().get_config()
        config.update(backbone=keras.saving.serialize_keras_object(self.backbone))
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)
