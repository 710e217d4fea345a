"""Multi-modal factorised bilinear pooling (MFB)."""

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="mmzoo")
class MultiplySumFusion(layers.Layer):
    """Factorised bilinear pooling of an image and a text vector (MFB).

    A bilinear model z_o = v^T W_o t needs a D_i x D_t matrix per output unit;
    MFB factorises each W_o into rank-`factors` matrices, which is: project each
    modality to `output_dim * factors`, multiply element-wise, and sum-pool each
    group of `factors` consecutive units. The pooled vector is then
    power-normalised (signed square root) and L2-normalised, which the paper
    finds essential for stable training (Yu et al. 2017, "Multi-modal Factorized
    Bilinear Pooling with Co-Attention Learning for Visual Question Answering",
    ICCV). The normalisation runs in float32; the signed square root is
    sign(x) * (sqrt(|x| + eps) - sqrt(eps)) so its gradient stays finite at 0.

    Args:
        output_dim: size of the fused vector (o in the paper).
        factors: rank of each factorised bilinear map (k in the paper).
        dropout: dropout on the element-wise product, before the sum pooling.

    Call arguments:
        image_features: float [B, D_i].
        text_features: float [B, D_t].
        training: whether dropout runs.

    Returns:
        float [B, output_dim], L2-normalised, in the layer's compute dtype.

    Example:
        >>> MultiplySumFusion(output_dim=8)(keras.ops.ones((2, 5)), keras.ops.ones((2, 3))).shape
        (2, 8)
    """

    def __init__(self, output_dim: int, factors: int = 5, dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(output_dim, int) or output_dim < 1:
            raise ValueError(
                f"MultiplySumFusion expects a positive integer output_dim; "
                f"got output_dim={output_dim!r}."
            )
        if not isinstance(factors, int) or factors < 1:
            raise ValueError(
                f"MultiplySumFusion expects a positive integer factors; got factors={factors!r}."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"MultiplySumFusion expects 0 <= dropout < 1; got dropout={dropout!r}."
            )
        self.output_dim = output_dim
        self.factors = factors
        self.dropout = dropout
        self.image_projection = layers.Dense(output_dim * factors, name="image_projection")
        self.text_projection = layers.Dense(output_dim * factors, name="text_projection")
        self.dropout_layer = layers.Dropout(dropout)

    def build(self, image_features_shape, text_features_shape):
        for name, shape in (("image", image_features_shape), ("text", text_features_shape)):
            if len(shape) != 2:
                raise ValueError(
                    f"MultiplySumFusion expects [B, D] {name} features; got shape {shape}."
                )
        self.image_projection.build(image_features_shape)
        self.text_projection.build(text_features_shape)

    def call(self, image_features, text_features, training=None):
        product = self.image_projection(image_features) * self.text_projection(text_features)
        product = self.dropout_layer(product, training=training)
        groups = keras.ops.reshape(product, (-1, self.output_dim, self.factors))
        pooled = keras.ops.cast(keras.ops.sum(groups, axis=-1), "float32")
        epsilon = keras.config.epsilon()
        magnitude = keras.ops.sqrt(keras.ops.abs(pooled) + epsilon) - epsilon**0.5
        outputs = keras.ops.normalize(keras.ops.sign(pooled) * magnitude, axis=-1)
        return keras.ops.cast(outputs, self.compute_dtype)

    def compute_output_shape(self, image_features_shape, text_features_shape):
        return (image_features_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(output_dim=self.output_dim, factors=self.factors, dropout=self.dropout)
        return config
