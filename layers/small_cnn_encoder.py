"""The default image encoder: a small, fast CNN."""

import keras
from keras import layers

from layers import fused_batch_norm


@keras.saving.register_keras_serializable(package="mmzoo")
class SmallCNNEncoder(layers.Layer):
    """A small CNN returning a pooled vector and a grid of region features.

    Each stage is `convolutions_per_stage` 3x3 convolutions with batch
    normalisation and ReLU. The first stage halves the resolution with a
    stride-2 convolution (cheap on CPU: the widest feature map is never made),
    the others with a 2x2 max pool. Batch norm uses momentum 0.9: trained from
    scratch for a few thousand steps, the usual 0.99 leaves the inference
    statistics far behind the weights. The pooled vector is a dense projection of the flattened grid
    (average-pooled to at most `pooled_grid` cells a side) rather than a global
    average, so it keeps where things are, not only what they are.

    Args:
        filters: channels of each stage; the grid is 2**len(filters) times smaller
            than the image.
        convolutions_per_stage: 3x3 convolutions before each pooling.
        output_dim: size of the pooled vector.
        pooled_grid: side of the grid that is flattened into the pooled vector.
        dropout: dropout rate before the pooled projection.

    Call arguments:
        images: float32 [B, H, W, 3] in [0, 1].
        training: whether batch norm and dropout run in training mode.

    Returns:
        A dict with "pooled" [B, output_dim] and "regions" [B, N, filters[-1]],
        N = (H / 2**len(filters)) * (W / 2**len(filters)).

    Example:
        >>> encoder = SmallCNNEncoder(filters=(16, 32), output_dim=64)
        >>> encoder(keras.ops.zeros((2, 64, 64, 3)))["regions"].shape
        (2, 256, 32)
    """

    def __init__(
        self,
        filters: tuple[int, ...] = (16, 32, 64, 128),
        convolutions_per_stage: int = 1,
        output_dim: int = 256,
        pooled_grid: int = 4,
        dropout: float = 0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = tuple(filters)
        self.convolutions_per_stage = convolutions_per_stage
        self.output_dim = output_dim
        self.pooled_grid = pooled_grid
        self.dropout = dropout
        self.stages = []
        for index, channels in enumerate(self.filters):
            stage = []
            for position in range(convolutions_per_stage):
                stride = 2 if index == 0 and position == 0 else 1
                stage += [
                    layers.Conv2D(
                        channels,
                        3,
                        strides=stride,
                        padding="same",
                        use_bias=False,
                        name=f"conv{index}_{position}",
                    ),
                    layers.BatchNormalization(momentum=0.9, name=f"bn{index}_{position}"),
                    layers.ReLU(),
                ]
            if index > 0:
                stage.append(layers.MaxPooling2D(2))
            self.stages.append(stage)
        self.flatten = layers.Flatten()
        self.dropout_layer = layers.Dropout(dropout)
        self.projection = layers.Dense(output_dim, activation="relu", name="pooled_projection")

    def _check_image_shape(self, input_shape):
        minimum = 2 ** len(self.filters)
        for side in input_shape[1:3]:
            if side is not None and side < minimum:
                raise ValueError(
                    f"SmallCNNEncoder: images must be at least {minimum} pixels a side for "
                    f"{len(self.filters)} stages, got {tuple(input_shape[1:3])}."
                )

    def _grid_shape(self, input_shape, build=False):
        self._check_image_shape(input_shape)
        shape = tuple(input_shape)
        for stage in self.stages:
            for layer in stage:
                if build:
                    layer.build(shape)
                shape = layer.compute_output_shape(shape)
        return shape

    def build(self, input_shape):
        shape = self._grid_shape(input_shape, build=True)
        pool = self._grid_pool_size(shape[1])
        grid_cells = (shape[1] // pool) * (shape[2] // pool)
        self.projection.build((shape[0], grid_cells * shape[3]))

    def _grid_pool_size(self, grid_side):
        if grid_side is None:
            raise ValueError("SmallCNNEncoder needs a static image size, got height None.")
        return max(1, grid_side // self.pooled_grid)

    def call(self, images, training=None):
        features = images
        for stage in self.stages:
            if training:
                features = self._training_stage(stage, features)
            else:
                features = self._inference_stage(stage, features)
        batch, height, width, channels = keras.ops.shape(features)
        regions = keras.ops.reshape(features, (batch, height * width, channels))
        pool = self._grid_pool_size(features.shape[1])
        grid = keras.ops.average_pool(features, pool, pool) if pool > 1 else features
        pooled = self.projection(self.dropout_layer(self.flatten(grid), training=training))
        return {"pooled": pooled, "regions": regions}

    @staticmethod
    def _training_stage(stage, features):
        """The stage's layers, with each batch norm as one fused kernel where TensorFlow
        has it (`layers.fused_batch_norm`)."""
        for layer in stage:
            if fused_batch_norm.fuses(layer, features):
                features = fused_batch_norm.train_fused(layer, features)
            else:
                features = layer(features, training=True)
        return features

    @staticmethod
    def _inference_stage(stage, features):
        """A stage with each batch norm folded into its convolution's kernel and a bias:
        one conv + bias + ReLU (which TensorFlow fuses into one oneDNN kernel) instead of
        a conv and three element-wise passes over its output."""
        for index in range(0, len(stage) - len(stage) % 3, 3):
            convolution, normalization, _ = stage[index : index + 3]
            scale = normalization.gamma * keras.ops.rsqrt(
                normalization.moving_variance + normalization.epsilon
            )
            kernel = keras.ops.cast(convolution.kernel * scale, features.dtype)
            bias = normalization.beta - normalization.moving_mean * scale
            features = keras.ops.conv(
                features, kernel, strides=convolution.strides, padding=convolution.padding
            )
            features = keras.ops.relu(features + keras.ops.cast(bias, features.dtype))
        if len(stage) % 3:
            features = stage[-1](features)  # the stage's max pool
        return features

    def compute_output_shape(self, input_shape):
        _, height, width, _ = self._grid_shape(input_shape)
        regions = None if height is None or width is None else height * width
        return {
            "pooled": (input_shape[0], self.output_dim),
            "regions": (input_shape[0], regions, self.filters[-1]),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=list(self.filters),
            convolutions_per_stage=self.convolutions_per_stage,
            output_dim=self.output_dim,
            pooled_grid=self.pooled_grid,
            dropout=self.dropout,
        )
        return config
