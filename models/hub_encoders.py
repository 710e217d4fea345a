"""Image and text encoders from TF Hub handles (`--image-encoder hub:HANDLE`), in our contracts.

A hub image module (the TF2 "image feature vector" or feature-map convention)
becomes an encoder {"image"} -> {"pooled": [B, D], "regions": [B, N, D]} like
the named ones; a hub text module, optionally behind a BERT-style preprocessor
module, becomes {"text": string [B]} -> {"pooled", "sequence", "mask"}. Both
load through `layers.HubLayer`, so any Keras optimizer fine-tunes them.
"""

import keras
from keras import layers

# layers.hub_layer and layers.hub_handles import TensorFlow: they are imported where a
# hub: handle is used, so the named encoders build where TensorFlow is not installed.

HUB_PREFIX = "hub:"
# What a TF Hub image module takes, as (scale, offset) from our [0, 1] images. TF Hub's
# common image signature is [0, 1]; a module documented otherwise needs --hub-input-range.
INPUT_RANGES = {"0to1": (1.0, 0.0), "minus1to1": (2.0, -1.0), "0to255": (255.0, 0.0)}
# The outputs a BERT-style encoder names, in the order they are looked for.
POOLED_KEYS = ("pooled_output", "default")
SEQUENCE_KEY = "sequence_output"
HUB_IMAGE_SIZE = 224  # TF Hub image modules' usual size, when a module does not fix one


def hub_handle(name: str | None) -> str | None:
    """The handle of an encoder name "hub:HANDLE", or None for a named encoder."""
    if name is None or not name.startswith(HUB_PREFIX):
        return None
    handle = name[len(HUB_PREFIX) :]
    if not handle:
        raise ValueError(f"Encoder {name!r} names no handle: write hub:URL or hub:PATH.")
    return handle


def module_image_size(handle: str) -> int | None:
    """The square input size a hub image module fixes in its input signature, or None."""
    from layers.hub_handles import load_module
    from layers.hub_layer import function_input_specs

    specs = function_input_specs(load_module(handle).__call__)
    shape = getattr(specs, "shape", None)
    if shape is None or shape.rank != 4:
        return None
    height, width = shape[1], shape[2]
    if height is None or width is None:
        return None
    if height != width:
        raise ValueError(
            f"Hub image module {handle!r} takes {height}x{width} images; the zoo's images are "
            "square."
        )
    return int(height)


def resolve_image_size(image_encoder: str | None, image_size: int | None, default: int) -> int:
    """--image-size for a model: the hub module's own size when it fixes one (a different
    --image-size is an error), else the flag, else `default` (or 224 for a hub module)."""
    handle = hub_handle(image_encoder)
    if handle is None:
        return image_size or default
    fixed = module_image_size(handle)
    if fixed is None:
        return image_size or HUB_IMAGE_SIZE
    if image_size is not None and image_size != fixed:
        raise ValueError(
            f"Hub image module {handle!r} takes {fixed}x{fixed} images (its input signature), "
            f"but --image-size {image_size} was given; drop the flag or pass --image-size {fixed}."
        )
    return fixed


def build_hub_image_encoder(
    handle: str,
    *,
    image_size: int,
    feature_dim: int,
    trainable: bool = True,
    dropout: float = 0.0,
    output_key: str | None = None,
    input_range: str = "0to1",
    model_name: str = "image_backbone",
) -> keras.Model:
    """Wraps a hub image module in the image encoder contract.

    A module output [B, D] (a feature vector) is the one region; [B, h, w, C] (a
    feature map of static size) gives h * w regions and the pooled vector by
    global average; [B, N, C] gives N regions. Both are projected to
    `feature_dim`, as the keras.applications backbones are. The module is the
    layer named "backbone".

    Args:
        handle: a URL, a SavedModel folder or a .tar.gz of one.
        image_size: side of the square images.
        feature_dim: width of the pooled vector and of each region.
        trainable: fine-tune the module's variables (False: frozen, inference mode).
        dropout: dropout before the pooled projection.
        output_key: the output to use when the module returns a dict (ignored for a
            module that returns one tensor).
        input_range: the pixel range the module expects, a key of INPUT_RANGES.
        model_name: name of the returned model.

    Raises:
        ValueError: for an unknown input range, a dict output without a chosen
            key, or an output of another rank.
    """
    if input_range not in INPUT_RANGES:
        raise ValueError(
            f"Unknown --hub-input-range {input_range!r}; expected one of {sorted(INPUT_RANGES)}."
        )
    from layers.hub_layer import HubLayer

    images = keras.Input((image_size, image_size, 3), name="image")
    scale, offset = INPUT_RANGES[input_range]
    scaled = images
    if (scale, offset) != (1.0, 0.0):
        scaled = layers.Rescaling(scale, offset, name="hub_input_range")(images)
    features = HubLayer(handle, output_key=output_key, trainable=trainable, name="backbone")(scaled)
    if isinstance(features, dict):
        raise ValueError(
            f"Hub image module {handle!r} returns a dict with keys {sorted(features)}; choose "
            "one with --hub-output-key."
        )
    rank = len(features.shape)
    if rank == 2:
        pooled = features
        regions = layers.Reshape((1, features.shape[-1]), name="flatten_regions")(features)
    elif rank == 4 and None not in features.shape[1:]:
        _, height, width, channels = features.shape
        regions = layers.Reshape((height * width, channels), name="flatten_regions")(features)
        pooled = layers.GlobalAveragePooling2D(name="global_pool")(features)
    elif rank == 3 and None not in features.shape[1:]:
        regions = features
        pooled = layers.GlobalAveragePooling1D(name="global_pool")(features)
    else:
        raise ValueError(
            f"Hub image module {handle!r} returns shape {tuple(features.shape)}; an image "
            "encoder needs [B, D], [B, N, C] or [B, h, w, C] with static sizes."
        )
    regions = layers.Dense(feature_dim, name="region_projection")(regions)
    pooled = layers.Dropout(dropout, name="pooled_dropout")(pooled)
    pooled = layers.Dense(feature_dim, name="pooled_projection")(pooled)
    return keras.Model(images, {"pooled": pooled, "regions": regions}, name=model_name)


def build_hub_text_encoder(
    handle: str,
    *,
    preprocessor: str | None = None,
    output_key: str | None = None,
    trainable: bool = True,
    dropout: float = 0.0,
    model_name: str = "text_backbone",
) -> keras.Model:
    """Wraps a hub text module (and its preprocessor) in the text encoder contract.

    The module reads raw strings, or what `preprocessor` makes of them (the
    BERT convention: a dict with "input_word_ids", "input_mask",
    "input_type_ids"). A dict output gives "pooled" from `output_key`, else
    "pooled_output", else "default", and "sequence" from "sequence_output"; a
    module without a sequence gives its pooled vector as a sequence of one.
    "mask" is the preprocessor's input_mask where there is one.

    Args:
        handle: the encoder module's URL, folder or .tar.gz.
        preprocessor: the preprocessing module's handle, or None when the
            encoder reads strings itself.
        output_key: the pooled output's key in a dict output.
        trainable: fine-tune the encoder (the preprocessor has no weights to train).
        dropout: dropout on the pooled vector.
        model_name: name of the returned model.

    Returns:
        A functional model mapping "text" string [B] to {"pooled": [B, D],
        "sequence": [B, T, D], "mask": bool [B, T]}.
    """
    from layers.hub_layer import HubLayer

    texts = keras.Input((), dtype="string", name="text")
    encoder_inputs = texts
    mask = None
    if preprocessor is not None:
        encoder_inputs = HubLayer(preprocessor, name="preprocessor")(texts)
        if isinstance(encoder_inputs, dict) and "input_mask" in encoder_inputs:
            mask = keras.ops.not_equal(encoder_inputs["input_mask"], 0)
    outputs = HubLayer(handle, trainable=trainable, name="encoder")(encoder_inputs)
    if isinstance(outputs, dict):
        pooled_key = output_key or next((key for key in POOLED_KEYS if key in outputs), None)
        if pooled_key not in outputs:
            raise ValueError(
                f"Hub text module {handle!r} returns keys {sorted(outputs)}; "
                + (
                    f"--hub-output-key {output_key!r} is not one of them."
                    if output_key
                    else "choose the pooled one with --hub-output-key."
                )
            )
        pooled, sequence = outputs[pooled_key], outputs.get(SEQUENCE_KEY)
    else:
        pooled, sequence = outputs, None
    if sequence is None or len(sequence.shape) != 3:
        sequence, mask = keras.ops.expand_dims(pooled, 1), None
    if mask is None:
        mask = keras.ops.ones_like(sequence[:, :, 0], dtype="bool")
    pooled = layers.Dropout(dropout, name="pooled_dropout")(pooled)
    return keras.Model(
        texts, {"pooled": pooled, "sequence": sequence, "mask": mask}, name=model_name
    )
