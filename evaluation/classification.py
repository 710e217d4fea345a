"""Classification metrics (accuracy, precision, recall, F1, ROC-AUC, PR-AUC) and the prior baseline.

The predicted class of a row is the arg max of its probabilities (the lowest
class index on a tie). With two classes, precision, recall, F1 and both AUCs
are those of class 1, the positive class; with more, they are macro averages
over classes (one-vs-rest for the AUCs), as scikit-learn computes them.

ROC-AUC is the Mann-Whitney statistic with average ranks, so tied scores
count one half, and PR-AUC is average precision, the step-wise sum
`sum_n (R_n - R_{n-1}) P_n` over distinct thresholds of scikit-learn's
`average_precision_score` (no interpolation). An AUC is NaN when `labels`
holds a single class: there is nothing to rank it against.

Example:

>>> labels = np.array([0, 0, 1, 1])
>>> probabilities = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
>>> metrics = classification_metrics(labels, probabilities)
>>> round(metrics["accuracy"], 4), round(metrics["f1"], 4)
(0.75, 0.6667)
>>> round(metrics["roc_auc"], 4), round(metrics["pr_auc"], 4)
(0.75, 0.8333)
"""

import numpy as np

from evaluation.checks import index_vector


def _validated_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Checks that `probabilities` is a 2-D [N, C >= 2] array of finite real numbers."""
    array = np.asarray(probabilities)
    if array.ndim != 2:
        raise ValueError(f"`probabilities` must be 2-D [N, C], got shape {array.shape}.")
    if array.shape[1] < 2:
        raise ValueError(
            f"`probabilities` has {array.shape[1]} column(s), got shape {array.shape}; "
            "classification needs at least 2 classes."
        )
    if array.dtype == bool or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise ValueError(f"`probabilities` must hold real numbers, got dtype {array.dtype}.")
    array = array.astype(np.float64, copy=False)
    bad = np.argwhere(~np.isfinite(array))
    if bad.size:
        row, column = (int(value) for value in bad[0])
        raise ValueError(
            f"`probabilities[{row}, {column}]` is {array[row, column]}; it must be finite."
        )
    return array


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator elementwise, 0 where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator != 0)


def _roc_auc(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the Mann-Whitney U statistic with average ranks.

    It is the chance that a random positive scores above a random negative,
    with a tie counting one half.

    Args:
        is_positive: bool [N], the binary labels.
        scores: float [N], higher means more likely positive.

    Returns:
        The ROC-AUC in [0, 1]; NaN when all labels are positive or all negative.
    """
    num_positive = int(np.count_nonzero(is_positive))
    num_negative = is_positive.shape[0] - num_positive
    if num_positive == 0 or num_negative == 0:
        return float("nan")
    _, group_of_score, group_sizes = np.unique(scores, return_inverse=True, return_counts=True)
    # 1-based rank of a group of tied scores: the mean of the ranks it spans.
    group_ranks = np.cumsum(group_sizes) - (group_sizes - 1) / 2.0
    positive_rank_sum = float(np.sum(group_ranks[group_of_score][is_positive]))
    u_statistic = positive_rank_sum - num_positive * (num_positive + 1) / 2.0
    return u_statistic / (num_positive * num_negative)


def _average_precision(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve as scikit-learn's average precision.

    `sum_n (R_n - R_{n-1}) P_n` over the distinct scores taken as thresholds,
    highest first, with `R_0 = 0`; tied scores enter together.

    Args:
        is_positive: bool [N], the binary labels.
        scores: float [N], higher means more likely positive.

    Returns:
        The average precision in [0, 1]; NaN when all labels are positive or
        all negative.
    """
    num_positive = int(np.count_nonzero(is_positive))
    if num_positive == 0 or num_positive == is_positive.shape[0]:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_positive = scores[order], is_positive[order]
    # The last position of each run of equal scores: one threshold each.
    threshold_ends = np.flatnonzero(np.diff(sorted_scores) != 0)
    threshold_ends = np.append(threshold_ends, sorted_scores.shape[0] - 1)
    true_positives = np.cumsum(sorted_positive)[threshold_ends]
    precision = true_positives / (threshold_ends + 1.0)
    recall_steps = np.diff(true_positives, prepend=0) / num_positive
    return float(np.sum(recall_steps * precision))


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Scores class probabilities against the true labels.

    The predicted class of a row is its arg max (the lowest index on a tie).

    Two classes (C == 2): precision, recall and F1 are those of class 1, the
    positive class, and ROC-AUC and PR-AUC rank the rows by
    `probabilities[:, 1]`.

    More classes (C > 2): precision, recall and F1 are macro averages over
    the classes that occur in `labels` or among the predictions
    (scikit-learn's `average="macro"`); a class never predicted counts
    precision 0, and a predicted class absent from `labels` counts recall 0.
    ROC-AUC and PR-AUC are macro averages of one-vs-rest AUCs, class k ranked
    by `probabilities[:, k]`, over the classes that occur in `labels`;
    classes absent from `labels` are skipped.

    Any 0 / 0 in precision, recall or F1 counts 0 (scikit-learn's
    `zero_division=0`). F1 of a class is `2 TP / (2 TP + FP + FN)`.

    Args:
        labels: int [N], the true class of each row, in [0, C).
        probabilities: float [N, C], a score per class, higher meaning more
            likely; rows need not sum to 1 (only the order of scores within a
            column matters to the AUCs). Must be finite.

    Returns:
        `{"accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc"}` ->
        value in [0, 1], as Python floats. `roc_auc` and `pr_auc` are NaN when
        `labels` holds a single class, as an AUC needs positives and negatives.

    Raises:
        ValueError: On a shape that does not match, fewer than 2 columns,
            non-integer or out-of-range labels, or a probability that is not a
            finite real number; the message names the value.

    Example:

    >>> labels = np.array([0, 1, 2, 2])
    >>> probabilities = np.array(
    ...     [[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.5, 0.2, 0.3]]
    ... )
    >>> metrics = classification_metrics(labels, probabilities)
    >>> list(metrics)
    ['accuracy', 'precision', 'recall', 'f1', 'roc_auc', 'pr_auc']
    >>> round(metrics["accuracy"], 4), round(metrics["precision"], 4), round(metrics["f1"], 4)
    (0.75, 0.8333, 0.7778)
    """
    probabilities = _validated_probabilities(probabilities)
    num_rows, num_classes = probabilities.shape
    labels = index_vector(labels, "labels", num_classes, "classes")
    if labels.shape[0] != num_rows:
        raise ValueError(
            f"`labels` has {labels.shape[0]} entries but `probabilities` has {num_rows} rows."
        )
    predictions = np.argmax(probabilities, axis=1)
    true_counts = np.bincount(labels, minlength=num_classes)
    predicted_counts = np.bincount(predictions, minlength=num_classes)
    true_positives = np.bincount(labels[predictions == labels], minlength=num_classes)
    precisions = _ratio(true_positives, predicted_counts)
    recalls = _ratio(true_positives, true_counts)
    f1_scores = _ratio(2 * true_positives, true_counts + predicted_counts)
    if num_classes == 2:
        averaged = [1]
        ranked = [1]
    else:
        averaged = np.flatnonzero((true_counts > 0) | (predicted_counts > 0))
        ranked = np.flatnonzero(true_counts > 0)
    roc_aucs = [_roc_auc(labels == k, probabilities[:, k]) for k in ranked]
    pr_aucs = [_average_precision(labels == k, probabilities[:, k]) for k in ranked]
    return {
        "accuracy": float(np.mean(predictions == labels)),
        "precision": float(np.mean(precisions[averaged])),
        "recall": float(np.mean(recalls[averaged])),
        "f1": float(np.mean(f1_scores[averaged])),
        "roc_auc": float(np.mean(roc_aucs)),
        "pr_auc": float(np.mean(pr_aucs)),
    }


def majority_class_baseline(
    train_labels: np.ndarray, test_labels: np.ndarray, num_classes: int
) -> dict[str, float]:
    """Scores the blind baseline that outputs the training class prior for every row.

    Every test row gets the same probabilities, the class frequencies of
    `train_labels`, so the prediction is the majority training class (the
    lowest index on a tie) and accuracy is that class's share of
    `test_labels`. Every score is tied, so ROC-AUC is 0.5, and PR-AUC is the
    chance level of average precision: the positive share of `test_labels`
    for two classes, the mean over the classes present in `test_labels` of
    their share (1 / number of classes present) for more. A model should beat
    these numbers.

    Args:
        train_labels: int [N_train] in [0, num_classes): the labels to take the
            prior from (the training split, so the baseline never sees the test
            set).
        test_labels: int [N_test] in [0, num_classes): the labels to score.
        num_classes: C, at least 2.

    Returns:
        `classification_metrics` of the baseline: the same keys, as Python
        floats (AUCs NaN if `test_labels` holds a single class).

    Raises:
        ValueError: On a bad `num_classes` or bad labels; the message names the
            value.

    Example:

    >>> baseline = majority_class_baseline(np.array([0, 0, 0, 1]), np.array([0, 1, 1, 1]), 2)
    >>> baseline["accuracy"], baseline["f1"], baseline["roc_auc"], baseline["pr_auc"]
    (0.25, 0.0, 0.5, 0.75)
    """
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, int | np.integer)
        or num_classes < 2
    ):
        raise ValueError(f"`num_classes` must be an integer of at least 2, got {num_classes!r}.")
    num_classes = int(num_classes)
    train_labels = index_vector(train_labels, "train_labels", num_classes, "classes")
    test_labels = index_vector(test_labels, "test_labels", num_classes, "classes")
    prior = np.bincount(train_labels, minlength=num_classes) / train_labels.shape[0]
    probabilities = np.broadcast_to(prior, (test_labels.shape[0], num_classes))
    return classification_metrics(test_labels, probabilities)
