"""Image encoders by name: the small CNN or an ImageNet backbone from keras.applications.

Every encoder is a functional model with one contract, so that model builders can
swap them: {"image": float32 [B, S, S, 3] in [0, 1]} -> {"pooled": [B, D],
"regions": [B, N, D]}.
"""

import math
import os

import keras
from keras import layers

from layers import InferenceModeBackbone, SmallCNNEncoder
from layers.imagenet_preprocessing import ImageNetPreprocessing
from models.hub_encoders import build_hub_image_encoder, hub_handle

IMAGE_ENCODERS: tuple[str, ...] = (
    "small_cnn",
    "resnet50",
    "vgg16",
    "mobilenet_v3_small",
    "efficientnet_b0",
)

# keras.applications constructor and the name of its ImageNet weights file without the top,
# as keras.applications stores it in its cache folder.
APPLICATIONS = {
    "resnet50": (
        keras.applications.ResNet50,
        "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    ),
    "vgg16": (keras.applications.VGG16, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "mobilenet_v3_small": (
        keras.applications.MobileNetV3Small,
        "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
    ),
    "efficientnet_b0": (keras.applications.EfficientNetB0, "efficientnetb0_notop.h5"),
}
SMALL_CNN_MINIMUM_SIZE = 16  # 2 ** stages of SmallCNNEncoder's default filters
APPLICATION_MINIMUM_SIZE = 32  # the minimum keras.applications accept
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)


def build_image_encoder(
    name: str = "small_cnn",
    *,
    image_size: int = 64,
    feature_dim: int = 256,
    weights: str | None = None,
    trainable: bool = True,
    dropout: float = 0.0,
    model_name: str = "image_backbone",
    hub_output_key: str | None = None,
    hub_input_range: str = "0to1",
) -> keras.Model:
    """Builds an image encoder by name.

    "small_cnn" is `layers.SmallCNNEncoder`: its pooled vector is already
    `feature_dim` wide and its regions (its last grid, `filters[-1]` channels) are
    projected to `feature_dim`. The other names are `keras.applications` backbones
    without their top, fed the images scaled the way their ImageNet weights expect
    (by saved layers, never a `Lambda`); their last feature map [B, h, w, C] gives
    the regions (flattened, N = h * w, then a Dense projection) and the pooled
    vector (global average, optional dropout, then a Dense projection).

    The backbone is the layer named "backbone": the backbone `keras.Model` itself
    or, when `trainable=False`, an `InferenceModeBackbone` holding it (its
    `.backbone`). A weights file for `weights=PATH` is that model's
    `save_weights("....weights.h5")`; for the keras.applications backbones the
    ImageNet files Keras downloads (legacy `.h5`) work too. For "small_cnn" it is
    the `save_weights` of a model made of an image input and one `SmallCNNEncoder`
    with the same `feature_dim` (the backbone of a small_cnn encoder, or the
    "image_encoder" of show_and_tell).

    "hub:HANDLE" loads a TF Hub module (`models.hub_encoders.build_hub_image_encoder`).

    Args:
        name: one of `IMAGE_ENCODERS`, or "hub:" and a URL, folder or .tar.gz.
        image_size: side of the square input images; at least 32 for the
            keras.applications backbones, 16 for "small_cnn".
        feature_dim: width of the pooled vector and of each region.
        weights: None (random initialisation, no network), "imagenet" (Keras'
            own download, cached in ~/.keras/models, so a file placed there works
            offline; not for "small_cnn") or the path of a local weights file for
            the backbone.
        trainable: False freezes the backbone and runs it in inference mode (batch
            norm keeps its moving statistics); the projections stay trainable.
        dropout: dropout rate before the pooled projection (for "small_cnn",
            `SmallCNNEncoder`'s dropout).
        model_name: name of the returned model.
        hub_output_key: for a hub module with dict outputs, the one to use (ignored
            by the named encoders, so one flag can serve a model's two encoders).
        hub_input_range: for a hub module, the pixel range it expects
            ("0to1", TF Hub's convention; "minus1to1"; "0to255").

    Returns:
        A functional model mapping {"image": float32 [B, image_size, image_size, 3]
        in [0, 1]} to {"pooled": [B, feature_dim], "regions": [B, N, feature_dim]}.

    Raises:
        ValueError: for an unknown name, an image size below the backbone's
            minimum, a bad feature_dim or dropout, a weights file that is missing
            or does not fit, or ImageNet weights that cannot be downloaded.

    Example:
        >>> encoder = build_image_encoder("vgg16", image_size=64, feature_dim=32)
        >>> outputs = encoder(keras.ops.zeros((2, 64, 64, 3)))
        >>> tuple(outputs["pooled"].shape), tuple(outputs["regions"].shape)
        ((2, 32), (2, 4, 32))
    """
    handle = hub_handle(name)
    if handle is not None:
        if weights is not None:
            raise ValueError(
                f"Image encoder {name!r} brings its own weights: --image-weights does not apply."
            )
        return build_hub_image_encoder(
            handle,
            image_size=image_size,
            feature_dim=feature_dim,
            trainable=trainable,
            dropout=dropout,
            output_key=hub_output_key,
            input_range=hub_input_range,
            model_name=model_name,
        )
    _check_arguments(name, image_size, feature_dim, dropout, weights)
    images = keras.Input((image_size, image_size, 3), name="image")
    if name == "small_cnn":
        backbone = _build_small_cnn(image_size, feature_dim, dropout, weights)
        features = _call_backbone(backbone, images, trainable)
        pooled = features["pooled"]
        regions = layers.Dense(feature_dim, name="region_projection")(features["regions"])
        return keras.Model(images, {"pooled": pooled, "regions": regions}, name=model_name)

    backbone, preprocessing = _build_application(name, image_size, weights)
    grid = _call_backbone(backbone, preprocessing(images), trainable)
    _, height, width, channels = grid.shape
    regions = layers.Reshape((height * width, channels), name="flatten_regions")(grid)
    regions = layers.Dense(feature_dim, name="region_projection")(regions)
    pooled = layers.GlobalAveragePooling2D(name="global_pool")(grid)
    pooled = layers.Dropout(dropout, name="pooled_dropout")(pooled)
    pooled = layers.Dense(feature_dim, name="pooled_projection")(pooled)
    return keras.Model(images, {"pooled": pooled, "regions": regions}, name=model_name)


def _check_arguments(name, image_size, feature_dim, dropout, weights):
    if name not in IMAGE_ENCODERS:
        raise ValueError(
            f"Unknown image encoder {name!r}; choose one of {IMAGE_ENCODERS} or hub:HANDLE."
        )
    minimum = SMALL_CNN_MINIMUM_SIZE if name == "small_cnn" else APPLICATION_MINIMUM_SIZE
    if image_size < minimum:
        raise ValueError(
            f"Image encoder {name!r} needs image_size >= {minimum}, got image_size={image_size}."
        )
    if feature_dim < 1:
        raise ValueError(f"feature_dim must be positive, got feature_dim={feature_dim}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got dropout={dropout}.")
    if weights == "imagenet" and name == "small_cnn":
        raise ValueError(
            "No ImageNet weights exist for image encoder 'small_cnn': train it from scratch "
            "(weights=None) or give the path of a weights file saved from a small_cnn backbone."
        )
    if weights not in (None, "imagenet") and not os.path.isfile(weights):
        raise ValueError(f"Weights file {weights!r} for image encoder {name!r} does not exist.")


def _call_backbone(backbone, inputs, trainable):
    if trainable:
        return backbone(inputs)
    backbone.trainable = False
    return InferenceModeBackbone(backbone, trainable=False, name="backbone")(inputs)


def _build_small_cnn(image_size, feature_dim, dropout, weights):
    images = keras.Input((image_size, image_size, 3), name="image")
    features = SmallCNNEncoder(output_dim=feature_dim, dropout=dropout, name="cnn")(images)
    backbone = keras.Model(images, features, name="backbone")
    if weights is not None:
        _load_weights(backbone, weights, "small_cnn")
    return backbone


def _build_application(name, image_size, weights):
    application, weights_file = APPLICATIONS[name]
    input_shape = (image_size, image_size, 3)
    if weights == "imagenet":
        try:
            backbone = application(include_top=False, weights="imagenet", input_shape=input_shape)
        except Exception as error:
            cache_folder = os.path.join(
                os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras")),
                "models",
            )
            raise ValueError(
                f"The ImageNet weights for image encoder {name!r} could not be downloaded "
                f"({error}). Without internet access, put the Keras file {weights_file} in "
                f"{cache_folder} (Keras looks there before downloading), or pass a local "
                "weights file with --image-weights PATH."
            ) from error
    else:
        backbone = application(include_top=False, weights=None, input_shape=input_shape)
        if weights is not None:
            _load_weights(backbone, weights, name)
    # The outer model reaches the backbone by this name; the ImageNet download above needs
    # the application's own name, so it is renamed only once built.
    backbone.name = "backbone"
    return backbone, _preprocessing(name, weights)


def _load_weights(backbone, path, name):
    try:
        backbone.load_weights(path)
    except Exception as error:
        raise ValueError(
            f"The weights file {path!r} does not fit image encoder {name!r}: {error}"
        ) from error


def _preprocessing(name, weights):
    """The layer that maps [0, 1] RGB images to what the backbone's ImageNet weights expect."""
    if name in ("resnet50", "vgg16"):
        return ImageNetPreprocessing(mode="caffe", name="preprocessing")
    if name == "efficientnet_b0" and weights != "imagenet":
        # Built with weights="imagenet", EfficientNet gains a layer that divides its
        # normalised input by sqrt(stddev) per channel; built without, it lacks it, so
        # ImageNet-derived weights loaded from a path would see a wrong input scale. This
        # scaling before the backbone has the same effect when the backbone's Normalization
        # holds the ImageNet mean (any ImageNet-derived file), and is a fixed affine map
        # otherwise, the same for every build.
        factors = [1.0 / math.sqrt(stddev) for stddev in IMAGENET_STDDEV_RGB]
        return layers.Rescaling(
            scale=[255.0 * factor for factor in factors],
            offset=[
                255.0 * mean * (1.0 - factor)
                for mean, factor in zip(IMAGENET_MEAN_RGB, factors, strict=True)
            ],
            name="preprocessing",
        )
    # mobilenet_v3_small and efficientnet_b0 rescale 0..255 pixels themselves.
    return layers.Rescaling(255.0, name="preprocessing")
