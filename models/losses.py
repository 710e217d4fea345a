"""Losses shared by the model families."""

import keras


@keras.saving.register_keras_serializable(package="mmzoo")
class SymmetricContrastiveLoss(keras.losses.Loss):
    """InfoNCE in both directions over a [B, B] logits matrix (CLIP).

    The matching pairs lie on the diagonal, so `y_true` is ignored: the target
    of row i and of column i is i.
    """

    def __init__(self, name: str = "symmetric_contrastive", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        logits = keras.ops.cast(y_pred, "float32")
        targets = keras.ops.arange(keras.ops.shape(logits)[0])
        image_to_text = keras.losses.sparse_categorical_crossentropy(
            targets, logits, from_logits=True
        )
        text_to_image = keras.losses.sparse_categorical_crossentropy(
            targets, keras.ops.transpose(logits), from_logits=True
        )
        return (image_to_text + text_to_image) / 2.0
