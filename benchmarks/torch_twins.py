"""PyTorch twins of dual_encoder, show_and_tell and vqa at their default sizes.

Each twin is the architecture its Keras builder makes with its default arguments,
layer for layer (same widths, activations, dropout rates, normalisation epsilons),
trained with the same loss and optimiser settings, so that examples per second
can be compared side by side. What a twin leaves out is only what the Keras model
computes and discards: the image encoder's region head in dual_encoder and
show_and_tell, and its pooled head in vqa (no loss depends on them).

The shared image backbone is `layers.SmallCNNEncoder` with its defaults (64 px):
stages of 16, 32, 64, 128 channels, 3x3 convolutions without bias, batch norm
(momentum 0.9 in Keras terms, epsilon 1e-3) and ReLU, a stride-2 first convolution
and 2x2 max pools after the others, so a 4x4x128 grid; the pooled vector is a
ReLU Dense of the flattened grid (2048 -> 256) after dropout. The text towers are
`layers.RecurrentTextEncoder` (embedding 128, LSTM 256, the final state at the
last real token). Keras' `clipnorm=5.0` clips each weight's gradient on its own,
as the twins do. Keras' Adam epsilon is 1e-7.

This module needs torch (benchmarks/requirements.txt); nothing else in the project
imports it.
"""

import math

import torch
from torch import nn
from torch.nn import functional

KERAS_BATCH_NORM = {"eps": 1e-3, "momentum": 0.1}  # Keras momentum 0.9 == torch 0.1
KERAS_LAYER_NORM_EPSILON = 1e-3
KERAS_ADAM_EPSILON = 1e-7


class SmallCNN(nn.Module):
    """SmallCNNEncoder's defaults; returns (pooled [B, 256] or None, regions [B, 16, 128])."""

    def __init__(self, output_dim: int = 256, dropout: float = 0.0, pooled: bool = True):
        super().__init__()
        stages, channels = [], 3
        for index, width in enumerate((16, 32, 64, 128)):
            stage = [
                nn.Conv2d(channels, width, 3, stride=2 if index == 0 else 1, padding=1, bias=False),
                nn.BatchNorm2d(width, **KERAS_BATCH_NORM),
                nn.ReLU(),
            ]
            if index > 0:
                stage.append(nn.MaxPool2d(2))
            stages += stage
            channels = width
        self.stages = nn.Sequential(*stages)
        self.dropout = nn.Dropout(dropout)
        self.projection = nn.Linear(4 * 4 * 128, output_dim) if pooled else None

    def forward(self, images):
        grid = self.stages(images)  # [B, 128, 4, 4]
        regions = grid.flatten(2).transpose(1, 2)  # [B, 16, 128]
        if self.projection is None:
            return None, regions
        pooled = functional.relu(self.projection(self.dropout(grid.flatten(1))))
        return pooled, regions


class ProjectionHead(nn.Module):
    """layers.ProjectionHead: Dense, GELU, Dense, dropout, residual, LayerNorm, L2 norm."""

    def __init__(self, input_dim: int, projection_dim: int = 128, dropout: float = 0.1):
        super().__init__()
        self.projection = nn.Linear(input_dim, projection_dim)
        self.hidden = nn.Linear(projection_dim, projection_dim)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(projection_dim, eps=KERAS_LAYER_NORM_EPSILON)

    def forward(self, features):
        projected = self.projection(features)
        hidden = self.hidden(functional.gelu(projected))
        return functional.normalize(self.layer_norm(projected + self.dropout(hidden)), dim=-1)


class TextLSTM(nn.Module):
    """RecurrentTextEncoder(lstm): embedding, dropout, LSTM; the state at the last real token."""

    def __init__(self, vocabulary_size: int, embedding_dim=128, units=256, dropout=0.1):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary_size, embedding_dim)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(embedding_dim, units, batch_first=True)

    def forward(self, tokens):
        sequence, _ = self.lstm(self.dropout(self.embedding(tokens)))
        # Padding trails, so the masked Keras LSTM's final state is the output at the
        # last real token (every step is computed, as Keras computes them).
        last = (tokens != 0).sum(dim=1).clamp(min=1) - 1
        return sequence[torch.arange(tokens.shape[0]), last]


class DualEncoderTwin(nn.Module):
    """build_dual_encoder's defaults -> logits [B, B]."""

    def __init__(self, vocabulary_size: int):
        super().__init__()
        self.cnn = SmallCNN(dropout=0.1)
        self.image_projection = ProjectionHead(256)
        self.text = TextLSTM(vocabulary_size)
        self.text_projection = ProjectionHead(256)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, images):
        """The "image_encoder" tower: [B, 3, 64, 64] -> L2-normalised [B, 128]."""
        return self.image_projection(self.cnn(images)[0])

    def encode_text(self, tokens):
        """The "text_encoder" tower: [B, T] token ids -> L2-normalised [B, 128]."""
        return self.text_projection(self.text(tokens))

    def forward(self, images, tokens):
        image, text = self.encode_image(images), self.encode_text(tokens)
        return torch.exp(self.logit_scale.clamp(max=math.log(100.0))) * image @ text.T

    @staticmethod
    def loss(logits, targets, weights=None):
        """SymmetricContrastiveLoss: InfoNCE both ways, the diagonal as the targets."""
        diagonal = torch.arange(logits.shape[0])
        return (
            functional.cross_entropy(logits, diagonal)
            + functional.cross_entropy(logits.T, diagonal)
        ) / 2

    clipnorm = None


class ShowAndTellTwin(nn.Module):
    """build_show_and_tell's defaults -> next-token logits [B, T - 1, V]."""

    def __init__(self, vocabulary_size: int):
        super().__init__()
        self.cnn = SmallCNN(dropout=0.0)
        self.image_projection = nn.Linear(256, 128)
        self.embedding = nn.Embedding(vocabulary_size, 128)
        self.dropout = nn.Dropout(0.2)
        self.lstm = nn.LSTM(128, 256, batch_first=True)
        self.next_token = nn.Linear(256, vocabulary_size)

    def forward(self, images, tokens):
        image_step = self.image_projection(self.cnn(images)[0])[:, None]
        sequence = torch.cat([image_step, self.dropout(self.embedding(tokens))], dim=1)
        aligned, _ = self.lstm(sequence)
        return self.next_token(self.dropout(aligned[:, 1:]))

    @staticmethod
    def loss(logits, targets, weights):
        """Cross-entropy averaged over the real tokens (reduction mean_with_sample_weight)."""
        per_token = functional.cross_entropy(
            logits.flatten(0, 1), targets.flatten(), reduction="none"
        )
        weights = weights.flatten()
        return (per_token * weights).sum() / weights.sum().clamp(min=1e-7)

    clipnorm = 5.0


class VQATwin(nn.Module):
    """build_pair_classifier(fusion="attention") defaults, the vqa variant -> logits [B, A]."""

    def __init__(self, vocabulary_size: int, num_classes: int, dim: int = 256):
        super().__init__()
        self.cnn = SmallCNN(pooled=False)
        self.encoder_regions = nn.Linear(128, 256)  # the image encoder's region_projection
        self.text = TextLSTM(vocabulary_size)
        self.region_projection = nn.Linear(256, dim)
        self.region_positions = nn.Parameter(torch.empty(16, dim))
        nn.init.xavier_uniform_(self.region_positions)
        self.image_attention = nn.Linear(dim, dim)
        self.text_attention = nn.Linear(256, dim, bias=False)
        self.score = nn.Linear(dim, 1, bias=False)
        self.attended_projection = nn.Linear(dim, dim)
        self.text_projection = nn.Linear(256, dim)
        self.classifier_hidden = nn.Linear(dim, 256)
        self.dropout = nn.Dropout(0.1)
        self.logits = nn.Linear(256, num_classes)

    def forward(self, images, tokens):
        regions = self.encoder_regions(self.cnn(images)[1])
        regions = functional.relu(self.region_projection(regions)) + self.region_positions
        text = self.text(tokens)
        hidden = torch.tanh(self.image_attention(regions) + self.text_attention(text)[:, None])
        weights = torch.softmax(self.score(hidden).squeeze(-1), dim=-1)
        attended = torch.einsum("bn,bnc->bc", weights, regions)
        joint = functional.relu(self.attended_projection(attended)) * functional.relu(
            self.text_projection(text)
        )
        return self.logits(self.dropout(functional.relu(self.classifier_hidden(joint))))

    @staticmethod
    def loss(logits, targets, weights=None):
        return functional.cross_entropy(logits, targets)

    clipnorm = 5.0


def build_twin(name: str, vocabulary_size: int, num_classes: int | None = None) -> nn.Module:
    if name == "dual_encoder":
        return DualEncoderTwin(vocabulary_size)
    if name == "show_and_tell":
        return ShowAndTellTwin(vocabulary_size)
    if name == "vqa":
        return VQATwin(vocabulary_size, num_classes)
    raise ValueError(
        f"No PyTorch twin for model {name!r}; twins: dual_encoder, show_and_tell, vqa."
    )


class TwinTrainer:
    """Trains a twin one batch at a time: Adam (Keras' epsilon), per-weight clipnorm,
    and the accuracy metric the Keras task compiles (captioning and vqa), so a step
    does the work a Keras train step does."""

    def __init__(self, model: nn.Module, learning_rate: float = 1e-3, accuracy: bool = True):
        self.model = model
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=learning_rate, eps=KERAS_ADAM_EPSILON
        )
        self.accuracy = accuracy
        self.correct = torch.zeros(())
        self.counted = torch.zeros(())

    def step(self, images, tokens, targets, weights=None) -> torch.Tensor:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(images, tokens)
        loss = self.model.loss(logits, targets, weights)
        loss.backward()
        if self.model.clipnorm is not None:
            for parameter in self.model.parameters():
                if parameter.grad is not None:
                    torch.nn.utils.clip_grad_norm_(parameter, self.model.clipnorm)
        self.optimizer.step()
        if self.accuracy:
            with torch.no_grad():
                hits = (logits.argmax(-1) == targets).float()
                mask = torch.ones_like(hits) if weights is None else weights
                self.correct += (hits * mask).sum()
                self.counted += mask.sum()
        return loss.detach()
