import doctest
import itertools
import math

import numpy as np
import pytest

from evaluation import classification
from evaluation.classification import classification_metrics, majority_class_baseline

KEYS = ["accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc"]


def binary(scores):
    """[N, 2] probabilities whose class-1 column is `scores`."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.stack([1.0 - scores, scores], axis=1)


def naive_roc_auc(is_positive, scores):
    """The share of (positive, negative) pairs ranked right, ties counting one half."""
    positives, negatives = scores[is_positive], scores[~is_positive]
    wins = sum(
        1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(positives, negatives)
    )
    return wins / (len(positives) * len(negatives))


def naive_average_precision(is_positive, scores):
    """sum_n (R_n - R_{n-1}) P_n over distinct thresholds, highest first."""
    total, previous_recall = 0.0, 0.0
    for threshold in sorted(set(scores.tolist()), reverse=True):
        selected = scores >= threshold
        true_positives = np.count_nonzero(selected & is_positive)
        recall = true_positives / np.count_nonzero(is_positive)
        total += (recall - previous_recall) * true_positives / np.count_nonzero(selected)
        previous_recall = recall
    return total


def test_keys_and_types():
    metrics = classification_metrics(np.array([0, 1]), binary([0.2, 0.7]))
    assert list(metrics) == KEYS
    assert all(type(value) is float for value in metrics.values())


def test_perfect_binary_predictions():
    metrics = classification_metrics(np.array([0, 1, 0, 1]), binary([0.1, 0.9, 0.3, 0.6]))
    assert metrics == dict.fromkeys(KEYS, 1.0)


def test_inverted_binary_predictions():
    metrics = classification_metrics(np.array([0, 1, 0, 1]), binary([0.9, 0.1, 0.6, 0.3]))
    assert metrics["accuracy"] == 0.0
    assert metrics["precision"] == metrics["recall"] == metrics["f1"] == 0.0
    assert metrics["roc_auc"] == 0.0
    # Both positives rank last: precision 1/3 at recall 1/2, then 2/4 at recall 1.
    assert metrics["pr_auc"] == pytest.approx(0.5 * (1 / 3) + 0.5 * 0.5)


def test_known_binary_values():
    # scikit-learn's documented example: roc_auc_score 0.75, average_precision_score 0.8333.
    metrics = classification_metrics(np.array([0, 0, 1, 1]), binary([0.1, 0.4, 0.35, 0.8]))
    assert metrics["roc_auc"] == pytest.approx(0.75)
    assert metrics["pr_auc"] == pytest.approx(5 / 6)
    # Predicted class 1 only for 0.8: TP 1, FP 0, FN 1.
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["precision"] == pytest.approx(1.0)
    assert metrics["recall"] == pytest.approx(0.5)
    assert metrics["f1"] == pytest.approx(2 / 3)


def test_tied_scores_count_one_half():
    labels = np.array([0, 0, 1, 1])
    # Positives 0.6 and 0.9 against negatives 0.2 and 0.6: 1 + 0.5 + 1 + 1 of 4 pairs.
    metrics = classification_metrics(labels, binary([0.2, 0.6, 0.6, 0.9]))
    assert metrics["roc_auc"] == pytest.approx(0.875)
    # Thresholds 0.9 (P 1, R 1/2) and 0.6, where the tied pair enters together (P 2/3, R 1).
    assert metrics["pr_auc"] == pytest.approx(0.5 * 1.0 + 0.5 * (2 / 3))
    # A positive tied with a negative is not ranked above it, whichever comes first.
    swapped = classification_metrics(labels[[0, 2, 1, 3]], binary([0.2, 0.6, 0.6, 0.9]))
    assert swapped["roc_auc"] == pytest.approx(0.875)
    assert swapped["pr_auc"] == pytest.approx(metrics["pr_auc"])


def test_constant_scores_are_chance():
    labels = np.array([0, 1, 0, 1, 1])
    metrics = classification_metrics(labels, binary([0.3] * 5))
    assert metrics["roc_auc"] == pytest.approx(0.5)
    assert metrics["pr_auc"] == pytest.approx(0.6)  # the positive share


@pytest.mark.parametrize("seed", range(5))
def test_aucs_match_naive_definitions_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=40)
    scores = np.round(rng.random(40), 1)  # about 11 distinct values: many ties
    metrics = classification_metrics(labels, binary(scores))
    is_positive = labels == 1
    assert metrics["roc_auc"] == pytest.approx(naive_roc_auc(is_positive, scores))
    assert metrics["pr_auc"] == pytest.approx(naive_average_precision(is_positive, scores))


def test_aucs_depend_only_on_the_order_of_scores():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, size=30)
    scores = rng.random(30)
    plain = classification_metrics(labels, binary(scores))
    rescaled = classification_metrics(labels, np.stack([-scores, 10 * scores**3 - 4], axis=1))
    assert rescaled["roc_auc"] == pytest.approx(plain["roc_auc"])
    assert rescaled["pr_auc"] == pytest.approx(plain["pr_auc"])


def test_binary_precision_is_zero_without_positive_predictions():
    metrics = classification_metrics(np.array([0, 1, 1]), binary([0.1, 0.2, 0.4]))
    assert metrics["precision"] == metrics["recall"] == metrics["f1"] == 0.0
    assert metrics["roc_auc"] == 1.0


MULTI_LABELS = np.array([0, 1, 2, 2, 1])
MULTI_PROBABILITIES = np.array(
    [
        [0.5, 0.3, 0.2],  # predicted 0, right
        [0.4, 0.4, 0.2],  # a tie: predicted 0 (lowest index), wrong
        [0.1, 0.3, 0.6],  # predicted 2, right
        [0.3, 0.5, 0.2],  # predicted 1, wrong
        [0.2, 0.6, 0.2],  # predicted 1, right
    ]
)


def test_multiclass_macro_averages():
    metrics = classification_metrics(MULTI_LABELS, MULTI_PROBABILITIES)
    assert metrics["accuracy"] == pytest.approx(0.6)
    # Per class (precision, recall, F1): 0 (1/2, 1, 2/3), 1 (1/2, 1/2, 1/2), 2 (1, 1/2, 2/3).
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    # One-vs-rest ROC-AUC: 1, 5/6, 0.75 (class 2's second positive ties three negatives).
    assert metrics["roc_auc"] == pytest.approx((1 + 5 / 6 + 0.75) / 3)
    # One-vs-rest AP: 1, 1/2 + 1/2 * 2/3, 1/2 + 1/2 * 2/5.
    assert metrics["pr_auc"] == pytest.approx((1 + 5 / 6 + 0.7) / 3)


def test_multiclass_skips_a_class_absent_from_labels_and_predictions():
    with_unused_class = np.concatenate([MULTI_PROBABILITIES, np.full((5, 1), 0.01)], axis=1)
    expected = classification_metrics(MULTI_LABELS, MULTI_PROBABILITIES)
    assert classification_metrics(MULTI_LABELS, with_unused_class) == pytest.approx(expected)


def test_multiclass_counts_a_predicted_class_absent_from_labels():
    labels = np.array([0, 1, 2, 0])
    probabilities = np.array(
        [[0.9, 0.0, 0.0, 0.1], [0.0, 0.9, 0.0, 0.1], [0.0, 0.0, 0.9, 0.1], [0.2, 0.0, 0.0, 0.8]]
    )
    metrics = classification_metrics(labels, probabilities)
    # Class 3 is predicted once and never true: precision 0, recall 0 (0 / 0), F1 0.
    # Class 0 (1, 1/2, 2/3); classes 1 and 2 (1, 1, 1).
    assert metrics["precision"] == pytest.approx(3 / 4)
    assert metrics["recall"] == pytest.approx(2.5 / 4)
    assert metrics["f1"] == pytest.approx((2 / 3 + 2) / 4)
    # The AUCs skip class 3 (no positive); class 0 ranks 0.9 > 0.2 > 0.0, 0.0 -> 1.
    assert metrics["roc_auc"] == pytest.approx(1.0)
    assert metrics["pr_auc"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "labels, probabilities",
    [
        (np.array([1, 1, 1]), binary([0.2, 0.5, 0.9])),
        (np.array([0, 0]), binary([0.2, 0.5])),
        (np.array([2, 2]), np.array([[0.1, 0.2, 0.7], [0.5, 0.2, 0.3]])),
    ],
)
def test_aucs_are_nan_with_a_single_class(labels, probabilities):
    metrics = classification_metrics(labels, probabilities)
    assert math.isnan(metrics["roc_auc"])
    assert math.isnan(metrics["pr_auc"])
    for name in ("accuracy", "precision", "recall", "f1"):
        assert not math.isnan(metrics[name]), name


def test_accepts_lists_and_integer_scores():
    metrics = classification_metrics([0, 1, 1], [[3, 1], [0, 2], [1, 5]])
    assert metrics == dict.fromkeys(KEYS, 1.0)


@pytest.mark.parametrize(
    "labels, probabilities, match",
    [
        (np.array([[0, 1]]), binary([0.2, 0.4]), r"`labels` must be 1-D, got shape \(1, 2\)"),
        (np.array([0.0, 1.0]), binary([0.2, 0.4]), "`labels` must hold integers, got dtype float"),
        (np.array([True, False]), binary([0.2, 0.4]), "dtype bool"),
        (np.array([], dtype=int), np.zeros((0, 2)), "`labels` is empty"),
        (np.array([0, 1, 3]), np.full((3, 3), 1 / 3), r"`labels\[2\]` is 3, outside \[0, 3\)"),
        (np.array([0, -1]), binary([0.2, 0.4]), r"`labels\[1\]` is -1"),
        (np.array([0, 1, 1]), binary([0.2, 0.4]), "`labels` has 3 entries but .* has 2 rows"),
        (np.array([0, 1]), np.array([0.2, 0.4]), r"must be 2-D \[N, C\], got shape \(2,\)"),
        (np.array([0, 0]), np.ones((2, 1)), r"has 1 column\(s\), got shape \(2, 1\)"),
        (np.array([0, 1]), np.array([[0.5, np.nan], [0.1, 0.9]]), r"`probabilities\[0, 1\]`"),
        (np.array([0, 1]), np.array([["a", "b"], ["c", "d"]]), "must hold real numbers"),
    ],
)
def test_bad_inputs_raise_value_error(labels, probabilities, match):
    with pytest.raises(ValueError, match=match):
        classification_metrics(labels, probabilities)


def test_majority_class_baseline_binary():
    train = np.array([0, 0, 0, 1])
    test = np.array([0, 1, 1, 1, 0])
    baseline = majority_class_baseline(train, test, 2)
    assert list(baseline) == KEYS
    assert baseline["accuracy"] == pytest.approx(0.4)  # class 0's share of the test labels
    assert baseline["precision"] == baseline["recall"] == baseline["f1"] == 0.0
    assert baseline["roc_auc"] == pytest.approx(0.5)
    assert baseline["pr_auc"] == pytest.approx(0.6)  # the positive share of the test labels


def test_majority_class_baseline_positive_majority():
    baseline = majority_class_baseline(np.array([1, 1, 0]), np.array([0, 1, 1, 1]), 2)
    assert baseline["accuracy"] == pytest.approx(0.75)
    assert baseline["precision"] == pytest.approx(0.75)
    assert baseline["recall"] == pytest.approx(1.0)
    assert baseline["f1"] == pytest.approx(2 * 0.75 / 1.75)


def test_majority_class_baseline_multiclass():
    # Prior (1/4, 1/2, 1/4, 0): class 1 is always predicted.
    baseline = majority_class_baseline(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2, 3]), 4)
    assert baseline["accuracy"] == pytest.approx(0.2)
    # Class 1: precision 1/5, recall 1, F1 1/3; classes 0, 2 and 3: 0.
    assert baseline["precision"] == pytest.approx(0.2 / 4)
    assert baseline["recall"] == pytest.approx(1 / 4)
    assert baseline["f1"] == pytest.approx(1 / 12)
    assert baseline["roc_auc"] == pytest.approx(0.5)
    assert baseline["pr_auc"] == pytest.approx(1 / 4)  # the mean share of the 4 present classes


def test_majority_class_baseline_breaks_ties_to_the_lowest_class():
    baseline = majority_class_baseline(np.array([2, 1, 1, 2]), np.array([1, 2, 0]), 3)
    assert baseline["accuracy"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    "train, test, num_classes, match",
    [
        ([0, 1], [0, 1], 1, "`num_classes` must be an integer of at least 2, got 1"),
        ([0, 1], [0, 1], True, "got True"),
        ([0, 1], [0, 1], 2.0, "got 2.0"),
        ([0, 5], [0, 1], 3, r"`train_labels\[1\]` is 5, outside \[0, 3\)"),
        ([0, 1], [0, 3], 3, r"`test_labels\[1\]` is 3"),
        ([], [0, 1], 2, "`train_labels` is empty"),
    ],
)
def test_majority_class_baseline_bad_inputs(train, test, num_classes, match):
    with pytest.raises(ValueError, match=match):
        majority_class_baseline(np.array(train, dtype=int), np.array(test), num_classes)


def test_docstring_examples_run():
    results = doctest.testmod(classification, verbose=False)
    assert results.failed == 0
    assert results.attempted > 0
