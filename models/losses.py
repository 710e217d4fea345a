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


@keras.saving.register_keras_serializable(package="mmzoo")
class HardestNegativeHingeLoss(keras.losses.Loss):
    """VSE++ (Faghri et al. 2018): a hinge on the hardest in-batch negative, both ways.

    `y_pred` is a [B, B] matrix of cosine similarities (image rows, text
    columns) whose matching pairs lie on the diagonal; `y_true` is ignored. For
    each pair, the loss is max(0, margin - s(i, i) + max_j s(i, j)) over wrong
    texts j, plus the same over wrong images.

    Args:
        margin: the hinge margin (0.2 in VSE++).
    """

    def __init__(self, margin: float = 0.2, name: str = "hardest_negative_hinge", **kwargs):
        super().__init__(name=name, **kwargs)
        self.margin = margin

    def call(self, y_true, y_pred):
        scores = keras.ops.cast(y_pred, "float32")
        positives = keras.ops.diagonal(scores)
        # Push the diagonal out of the max without touching the negatives.
        off_diagonal = scores - 10.0 * keras.ops.eye(keras.ops.shape(scores)[0])
        hardest_text = keras.ops.max(off_diagonal, axis=1)
        hardest_image = keras.ops.max(off_diagonal, axis=0)
        return keras.ops.relu(self.margin - positives + hardest_text) + keras.ops.relu(
            self.margin - positives + hardest_image
        )

    def get_config(self):
        return {**super().get_config(), "margin": self.margin}


RETRIEVAL_LOSSES = {"infonce": SymmetricContrastiveLoss, "vsepp": HardestNegativeHingeLoss}
