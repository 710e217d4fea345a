"""Reusable Keras layers of the zoo; importing this package registers them for loading."""

from layers.contrastive_logits import ContrastiveLogits
from layers.image_text_alignment_lstm import ImageTextAlignmentLSTM
from layers.projection_head import ProjectionHead
from layers.recurrent_text_encoder import RecurrentTextEncoder
from layers.small_cnn_encoder import SmallCNNEncoder

__all__ = [
    "ContrastiveLogits",
    "ImageTextAlignmentLSTM",
    "ProjectionHead",
    "RecurrentTextEncoder",
    "SmallCNNEncoder",
]
