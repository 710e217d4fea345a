"""The learnable logit scale of contrastive scores (CLIP, Radford et al. 2021).

Shared by the layers that turn similarities into InfoNCE logits. The scale is
stored as log(1 / temperature) in float32 (never autocast, so a bfloat16 policy
cannot round it) and clipped at `max_scale` so training cannot blow it up.
"""

import math

import keras


def add_logit_scale(layer: keras.layers.Layer, initial_temperature: float):
    """Adds the "logit_scale" weight to `layer`, starting at 1 / initial_temperature."""
    return layer.add_weight(
        name="logit_scale",
        shape=(),
        initializer=keras.initializers.Constant(math.log(1.0 / initial_temperature)),
        dtype="float32",
        autocast=False,
    )


def apply_logit_scale(logit_scale, max_scale: float, scores):
    """float32 scores multiplied by exp(logit_scale), the scale clipped at max_scale."""
    return keras.ops.exp(keras.ops.minimum(logit_scale, math.log(max_scale))) * scores
