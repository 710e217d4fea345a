"""Retrieval losses: VSE++ hardest-negative hinge and symmetric InfoNCE."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.losses import RETRIEVAL_LOSSES, HardestNegativeHingeLoss, SymmetricContrastiveLoss

# Image rows, text columns; the matching pairs lie on the diagonal.
SCORES = np.array(
    [
        [0.9, 0.5, 0.1],
        [0.3, 0.6, 0.7],
        [0.2, 0.0, 0.8],
    ],
    dtype="float32",
)


def hinge_reference(scores, margin):
    """relu(m - s_ii + max_j!=i s_ij) + relu(m - s_ii + max_j!=i s_ji), row by row."""
    rows = []
    for i in range(len(scores)):
        others = [j for j in range(len(scores)) if j != i]
        hardest_text = max(scores[i, j] for j in others)
        hardest_image = max(scores[j, i] for j in others)
        rows.append(
            max(0.0, margin - scores[i, i] + hardest_text)
            + max(0.0, margin - scores[i, i] + hardest_image)
        )
    return np.array(rows)


def test_hardest_negative_hinge_by_hand():
    loss = HardestNegativeHingeLoss(margin=0.2)
    # Row 0: relu(0.2 - 0.9 + 0.5) + relu(0.2 - 0.9 + 0.3) = 0
    # Row 1: relu(0.2 - 0.6 + 0.7) + relu(0.2 - 0.6 + 0.5) = 0.3 + 0.1
    # Row 2: relu(0.2 - 0.8 + 0.2) + relu(0.2 - 0.8 + 0.7) = 0 + 0.1
    per_row = loss.call(None, SCORES)
    np.testing.assert_allclose(per_row, [0.0, 0.4, 0.1], atol=1e-6)
    np.testing.assert_allclose(per_row, hinge_reference(SCORES, 0.2), atol=1e-6)
    np.testing.assert_allclose(loss(np.zeros(3), SCORES), 0.5 / 3, atol=1e-6)


def test_hardest_negative_hinge_matches_the_formula_on_random_cosines():
    scores = np.random.default_rng(0).uniform(-1.0, 1.0, size=(6, 6)).astype("float32")
    for margin in (0.0, 0.2, 0.5):
        per_row = HardestNegativeHingeLoss(margin).call(None, scores)
        np.testing.assert_allclose(per_row, hinge_reference(scores, margin), atol=1e-6)


def test_hardest_negative_hinge_counts_only_the_hardest_negative():
    loss = HardestNegativeHingeLoss(0.2)
    softer = SCORES.copy()
    softer[1, 0] = 0.1  # neither row 1's (0.7) nor column 0's (0.2) hardest negative
    np.testing.assert_allclose(loss.call(None, softer), [0.0, 0.4, 0.1], atol=1e-6)
    harder = SCORES.copy()
    harder[1, 0] = 0.75  # now the hardest negative of row 1 and of column 0
    # Row 0: 0 + relu(0.2 - 0.9 + 0.75); row 1: relu(0.2 - 0.6 + 0.75) + 0.1; row 2 unchanged.
    np.testing.assert_allclose(loss.call(None, harder), [0.05, 0.45, 0.1], atol=1e-6)


def test_hardest_negative_hinge_is_zero_when_the_diagonal_wins_by_the_margin():
    scores = np.full((4, 4), 0.5, "float32")
    np.fill_diagonal(scores, 0.8)
    np.testing.assert_allclose(HardestNegativeHingeLoss(0.2).call(None, scores), 0.0, atol=1e-6)
    np.testing.assert_allclose(HardestNegativeHingeLoss(0.2)(np.zeros(4), scores), 0.0, atol=1e-6)
    # Negative cosines too: the diagonal never counts as its own negative.
    np.testing.assert_allclose(HardestNegativeHingeLoss(0.2).call(None, scores - 1.5), 0.0)
    # A smaller gap than the margin is penalised in both directions.
    np.testing.assert_allclose(HardestNegativeHingeLoss(0.5).call(None, scores), 0.4, atol=1e-6)


def test_hardest_negative_hinge_config_round_trip():
    loss = HardestNegativeHingeLoss(margin=0.3, name="vsepp")
    config = loss.get_config()
    assert config["margin"] == 0.3 and config["name"] == "vsepp"
    rebuilt = HardestNegativeHingeLoss.from_config(config)
    assert rebuilt.get_config() == config
    deserialized = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(deserialized, HardestNegativeHingeLoss)
    assert deserialized.margin == 0.3


def test_symmetric_contrastive_loss_is_log_batch_for_zero_logits():
    for batch in (1, 2, 5):
        loss = SymmetricContrastiveLoss()(np.zeros(batch), np.zeros((batch, batch), "float32"))
        np.testing.assert_allclose(loss, math.log(batch), atol=1e-6)


def test_symmetric_contrastive_loss_prefers_a_dominant_diagonal():
    loss = SymmetricContrastiveLoss()
    uniform = np.ones((4, 4), "float32")
    dominant = uniform + 5.0 * np.eye(4, dtype="float32")
    assert float(loss(np.zeros(4), dominant)) < float(loss(np.zeros(4), uniform))
    assert float(loss(np.zeros(4), dominant)) < 0.05
    wrong = uniform + 5.0 * np.roll(np.eye(4, dtype="float32"), 1, axis=1)
    assert float(loss(np.zeros(4), wrong)) > float(loss(np.zeros(4), uniform))


def test_symmetric_contrastive_loss_averages_both_directions():
    logits = np.random.default_rng(0).normal(size=(3, 3)).astype("float32")

    def cross_entropy(matrix):
        log_softmax = matrix - np.log(np.exp(matrix).sum(axis=1, keepdims=True))
        return -np.diagonal(log_softmax)

    expected = (cross_entropy(logits) + cross_entropy(logits.T)) / 2
    per_row = SymmetricContrastiveLoss().call(None, logits)
    np.testing.assert_allclose(per_row, expected, atol=1e-5)
    config = SymmetricContrastiveLoss().get_config()
    assert SymmetricContrastiveLoss.from_config(config).get_config() == config


def test_retrieval_losses_by_name():
    assert set(RETRIEVAL_LOSSES) == {"infonce", "vsepp"}
    assert RETRIEVAL_LOSSES["infonce"] is SymmetricContrastiveLoss
    assert RETRIEVAL_LOSSES["vsepp"] is HardestNegativeHingeLoss


@pytest.mark.parametrize("name", sorted(RETRIEVAL_LOSSES))
def test_losses_reach_the_scores_gradient(name):
    scores = tf.constant(SCORES)
    with tf.GradientTape() as tape:
        tape.watch(scores)
        value = RETRIEVAL_LOSSES[name]()(np.zeros(3), scores)
    gradient = tape.gradient(value, scores).numpy()
    assert np.all(np.isfinite(gradient)) and np.any(gradient != 0)
    assert np.all(np.diagonal(gradient) <= 0)  # raising a positive pair never raises the loss
