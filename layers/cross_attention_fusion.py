"""A multimodal transformer block: image and text attend to each other."""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="mmzoo")
class CrossAttentionFusion(layers.Layer):
    """Co-attention block: text attends to image regions, image regions attend to text.

    Both cross-attentions read the block's inputs (they run side by side, as in
    the cross-modality layer of LXMERT, Tan and Bansal 2019), then each modality
    has a feed-forward network (Dense -> GELU -> Dense back to C). Every sublayer
    is pre-norm (LayerNorm on its input, Xiong et al. 2020) and its residual
    branch is multiplied by a learned per-channel LayerScale (Touvron et al.
    2021, "Going deeper with image transformers") that starts at
    `layer_scale_init`. So a new block starts close to the identity: trained
    from scratch at an ordinary learning rate, a post-norm block without it let
    the cross-attended features drown the text and the model never left chance.
    Outputs have the shapes of the inputs, so blocks stack:
    `CrossAttentionFusion(...)(*CrossAttentionFusion(...)(regions, tokens))`;
    pass `text_mask` to every block and normalise the last block's outputs (a
    pre-norm stack ends in a LayerNorm).

    The attention sublayers run in float32 whatever the dtype policy, so the
    attention logits and softmax never lose precision; they have no biases (a
    key bias cannot change a softmax, so it would never learn). The output
    projection of each feed-forward network is a weight made in `build()`
    because C is only known there.

    Args:
        num_heads: attention heads.
        key_dim: size of each head's queries and keys.
        feed_forward_dim: hidden size of the feed-forward networks.
        dropout: dropout on the attention probabilities and on every residual branch.
        layer_scale_init: initial LayerScale of every residual branch; None
            leaves the branches unscaled (a plain pre-norm block).

    Call arguments:
        image_regions: float [B, N, C].
        text_sequence: float [B, T, C].
        text_mask: optional bool [B, T], False for padding tokens: image regions
            do not attend to them.
        training: whether dropout runs.

    Returns:
        A tuple (image_regions [B, N, C], text_sequence [B, T, C]), float32 under
        mixed precision too: the residual streams stay float32.

    Example:
        >>> block = CrossAttentionFusion(num_heads=2, key_dim=8, feed_forward_dim=32)
        >>> regions, tokens = block(keras.ops.ones((2, 49, 16)), keras.ops.ones((2, 7, 16)))
        >>> regions.shape, tokens.shape
        ((2, 49, 16), (2, 7, 16))
    """

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        feed_forward_dim: int,
        dropout: float = 0.1,
        layer_scale_init: float | None = 1e-3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("num_heads", num_heads),
            ("key_dim", key_dim),
            ("feed_forward_dim", feed_forward_dim),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"CrossAttentionFusion expects a positive integer {name}; got {name}={value!r}."
                )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"CrossAttentionFusion expects 0 <= dropout < 1; got dropout={dropout!r}."
            )
        if layer_scale_init is not None and not layer_scale_init > 0:
            raise ValueError(
                f"CrossAttentionFusion expects a positive layer_scale_init or None; "
                f"got layer_scale_init={layer_scale_init!r}."
            )
        self.layer_scale_init = layer_scale_init
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.feed_forward_dim = feed_forward_dim
        self.dropout = dropout
        attention = {
            "num_heads": num_heads,
            "key_dim": key_dim,
            "dropout": dropout,
            "use_bias": False,
            "dtype": "float32",
        }
        self.image_attention = layers.MultiHeadAttention(**attention, name="image_attention")
        self.text_attention = layers.MultiHeadAttention(**attention, name="text_attention")
        self.image_attention_norm = layers.LayerNormalization(name="image_attention_norm")
        self.text_attention_norm = layers.LayerNormalization(name="text_attention_norm")
        self.image_feed_forward = layers.Dense(
            feed_forward_dim, activation="gelu", name="image_feed_forward"
        )
        self.text_feed_forward = layers.Dense(
            feed_forward_dim, activation="gelu", name="text_feed_forward"
        )
        self.image_feed_forward_norm = layers.LayerNormalization(name="image_feed_forward_norm")
        self.text_feed_forward_norm = layers.LayerNormalization(name="text_feed_forward_norm")
        self.dropout_layer = layers.Dropout(dropout)

    def build(self, image_regions_shape, text_sequence_shape):
        if len(image_regions_shape) != 3 or len(text_sequence_shape) != 3:
            raise ValueError(
                f"CrossAttentionFusion expects image_regions [B, N, C] and text_sequence "
                f"[B, T, C]; got shapes {image_regions_shape} and {text_sequence_shape}."
            )
        channels = image_regions_shape[-1]
        if channels is None or channels != text_sequence_shape[-1]:
            raise ValueError(
                f"CrossAttentionFusion needs image_regions and text_sequence of the same known "
                f"last dimension; got {channels} and {text_sequence_shape[-1]}."
            )
        self.image_attention.build(image_regions_shape, text_sequence_shape)
        self.text_attention.build(text_sequence_shape, image_regions_shape)
        for norm, shape in (
            (self.image_attention_norm, image_regions_shape),
            (self.text_attention_norm, text_sequence_shape),
            (self.image_feed_forward_norm, image_regions_shape),
            (self.text_feed_forward_norm, text_sequence_shape),
        ):
            norm.build(shape)
        self.image_feed_forward.build(image_regions_shape)
        self.text_feed_forward.build(text_sequence_shape)
        self.image_feed_forward_kernel, self.image_feed_forward_bias = self._output_weights(
            "image", channels
        )
        self.text_feed_forward_kernel, self.text_feed_forward_bias = self._output_weights(
            "text", channels
        )
        self.layer_scales = {
            branch: self._layer_scale(branch, channels)
            for branch in (
                "image_attention",
                "text_attention",
                "image_feed_forward",
                "text_feed_forward",
            )
        }

    def _layer_scale(self, branch, channels):
        if self.layer_scale_init is None:
            return None
        return self.add_weight(
            name=f"{branch}_layer_scale",
            shape=(channels,),
            initializer=keras.initializers.Constant(self.layer_scale_init),
        )

    def _output_weights(self, modality, channels):
        kernel = self.add_weight(
            name=f"{modality}_feed_forward_output_kernel",
            shape=(self.feed_forward_dim, channels),
            initializer="glorot_uniform",
        )
        bias = self.add_weight(
            name=f"{modality}_feed_forward_output_bias", shape=(channels,), initializer="zeros"
        )
        return kernel, bias

    def call(self, image_regions, text_sequence, text_mask=None, training=None):
        if text_mask is not None:
            text_mask = keras.ops.cast(text_mask, "bool")
        # The residual streams stay float32 under mixed precision: a LayerScale-sized
        # update is below half a bfloat16 step of the residual and would round away.
        image_regions = keras.ops.cast(image_regions, "float32")
        text_sequence = keras.ops.cast(text_sequence, "float32")
        image_normed = self.image_attention_norm(image_regions)
        text_normed = self.text_attention_norm(text_sequence)
        image_attended = self.image_attention(
            image_normed, text_normed, value_mask=text_mask, training=training
        )
        text_attended = self.text_attention(text_normed, image_normed, training=training)
        image = self._residual(image_regions, image_attended, "image_attention", training)
        text = self._residual(text_sequence, text_attended, "text_attention", training)
        image_update = self._feed_forward(image, "image")
        text_update = self._feed_forward(text, "text")
        image = self._residual(image, image_update, "image_feed_forward", training)
        text = self._residual(text, text_update, "text_feed_forward", training)
        return image, text  # float32: cast to bfloat16, the updates would round away here

    def _feed_forward(self, inputs, modality):
        hidden = getattr(self, f"{modality}_feed_forward")(
            getattr(self, f"{modality}_feed_forward_norm")(inputs)
        )
        output = keras.ops.matmul(hidden, getattr(self, f"{modality}_feed_forward_kernel"))
        return output + getattr(self, f"{modality}_feed_forward_bias")

    def _residual(self, residual, update, branch, training):
        update = keras.ops.cast(self.dropout_layer(update, training=training), "float32")
        if self.layer_scales[branch] is not None:
            update = update * keras.ops.cast(self.layer_scales[branch], "float32")
        return residual + update

    def compute_output_shape(self, image_regions_shape, text_sequence_shape):
        return tuple(image_regions_shape), tuple(text_sequence_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            key_dim=self.key_dim,
            feed_forward_dim=self.feed_forward_dim,
            dropout=self.dropout,
            layer_scale_init=self.layer_scale_init,
        )
        return config
