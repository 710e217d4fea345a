"""Reusable Keras layers of the zoo; importing this package registers them for loading."""

from layers.attention_fusion import AttentionFusion
from layers.average_fusion import AverageFusion
from layers.concat_fusion import ConcatFusion
from layers.contrastive_logits import ContrastiveLogits
from layers.cross_attention_fusion import CrossAttentionFusion
from layers.gated_fusion import GatedFusion
from layers.image_text_alignment_lstm import ImageTextAlignmentLSTM
from layers.inference_mode_backbone import InferenceModeBackbone
from layers.multiply_sum_fusion import MultiplySumFusion
from layers.pairwise_attention_score import PairwiseAttentionScore
from layers.position_embedding import PositionEmbedding
from layers.projected_input_lstm import ProjectedInputLSTM
from layers.projection_head import ProjectionHead
from layers.recurrent_text_encoder import RecurrentTextEncoder
from layers.small_cnn_encoder import SmallCNNEncoder
from layers.soft_attention_lstm_decoder import SoftAttentionLSTMDecoder
from layers.sum_fusion import SumFusion
from layers.transformer_text_encoder import TransformerTextEncoder
from layers.weighted_fusion import WeightedFusion

try:  # TF Hub modules are TensorFlow SavedModels; every other layer runs without TensorFlow
    from layers.hub_layer import HubLayer  # noqa: F401  (exported through __all__)

    _WITH_TENSORFLOW = ["HubLayer"]
except ModuleNotFoundError as missing:
    if missing.name != "tensorflow":
        raise
    _WITH_TENSORFLOW = []

__all__ = [
    "AttentionFusion",
    "AverageFusion",
    "ConcatFusion",
    "ContrastiveLogits",
    "CrossAttentionFusion",
    "GatedFusion",
    "MultiplySumFusion",
    "SumFusion",
    "WeightedFusion",
    "ImageTextAlignmentLSTM",
    "InferenceModeBackbone",
    "PairwiseAttentionScore",
    "PositionEmbedding",
    "ProjectedInputLSTM",
    "ProjectionHead",
    "RecurrentTextEncoder",
    "SmallCNNEncoder",
    "SoftAttentionLSTMDecoder",
    "TransformerTextEncoder",
] + _WITH_TENSORFLOW
