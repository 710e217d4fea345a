"""VQA accuracy (soft consensus score or exact match) and the most-frequent-answer baseline.

A question with 3 or more human answers is scored as in Antol et al., "VQA:
Visual Question Answering", ICCV 2015, and VQA v2 (Goyal et al., CVPR 2017):
`min(#humans who gave the predicted answer / 3, 1)`, averaged over the
subsets of annotators that leave one out, as the official vqaEval.py does. A
question with fewer than 3 answers (the built-in shapes world has exactly one)
is scored by exact match: 1 if the prediction equals any of its answers, else 0.
Answers are compared after `normalize_answer`.

Example:

>>> vqa_accuracy(["two", "red"], [["two", "Two", "2", "two."], ["blue"]])
0.375
"""

import collections
from collections.abc import Iterable, Sequence

from evaluation.checks import most_frequent

_SOFT_SCORE_MIN_ANSWERS = 3


def normalize_answer(answer: str) -> str:
    """Lower-cases an answer, drops trailing periods and collapses whitespace.

    This is the light part of the normalization of the official VQA
    evaluation script (vqaEval.py): lower case, tabs and newlines as spaces,
    leading and trailing whitespace stripped, trailing periods removed
    (`"yes."` -> `"yes"`), runs of whitespace collapsed to one space.

    It leaves out the rest of the official script's processing, so answers
    that it would match can differ here: other punctuation is kept (`"yes!"`,
    `"t-shirt"` vs `"t shirt"`), number words are not turned into digits
    (`"two"` is not `"2"`), articles are kept (`"a dog"` is not `"dog"`) and
    contractions are not repaired (`"dont"` is not `"don't"`).

    Args:
        answer: A raw answer.

    Returns:
        The normalized answer; `""` when it has no word.

    Raises:
        ValueError: If `answer` is not a string.

    Example:

    >>> normalize_answer("  Two\\tRed   Squares. ")
    'two red squares'
    """
    if not isinstance(answer, str):
        raise ValueError(f"An answer must be a string, got {type(answer).__name__}: {answer!r}")
    return " ".join(answer.lower().rstrip().rstrip(".").split())


def _validated_pairs(
    predicted: Sequence[str], answers: Sequence[Sequence[str]]
) -> list[tuple[str, list[str]]]:
    """Checks the inputs and returns (normalized prediction, normalized answers) per question."""
    for name, sequence in (("predicted", predicted), ("answers", answers)):
        if isinstance(sequence, str) or not isinstance(sequence, Sequence):
            raise ValueError(
                f"`{name}` must be a sequence with one entry per question, "
                f"got {type(sequence).__name__}."
            )
    if len(predicted) != len(answers):
        raise ValueError(
            f"`predicted` has {len(predicted)} answers but `answers` has {len(answers)} questions."
        )
    if not answers:
        raise ValueError("`answers` is empty: there are no questions to score.")
    pairs = []
    for index, (prediction, human_answers) in enumerate(zip(predicted, answers, strict=True)):
        if not isinstance(prediction, str):
            raise ValueError(
                f"`predicted[{index}]` must be a string, got {type(prediction).__name__}: "
                f"{prediction!r}."
            )
        if isinstance(human_answers, str) or not isinstance(human_answers, Sequence):
            raise ValueError(
                f"`answers[{index}]` must be a sequence of answer strings, got "
                f"{type(human_answers).__name__}: {human_answers!r}."
            )
        if len(human_answers) == 0:
            raise ValueError(f"`answers[{index}]` is empty: question {index} has no answer.")
        for position, answer in enumerate(human_answers):
            if not isinstance(answer, str):
                raise ValueError(
                    f"`answers[{index}][{position}]` must be a string, got "
                    f"{type(answer).__name__}: {answer!r}."
                )
        pairs.append((normalize_answer(prediction), [normalize_answer(a) for a in human_answers]))
    return pairs


def _question_score(prediction: str, human_answers: list[str]) -> float:
    """The official soft VQA score with 3 or more answers, else exact match."""
    matches = human_answers.count(prediction)
    if len(human_answers) >= _SOFT_SCORE_MIN_ANSWERS:
        # Leave each annotator out in turn (vqaEval.py): leaving out one who agreed
        # removes a match, leaving out another does not.
        total = len(human_answers)
        with_all = min(matches / 3.0, 1.0)
        without_one = min((matches - 1) / 3.0, 1.0)
        return (matches * without_one + (total - matches) * with_all) / total
    return 1.0 if matches else 0.0


def vqa_accuracy(predicted: Sequence[str], answers: Sequence[Sequence[str]]) -> float:
    """Mean VQA accuracy of predicted answers over questions.

    Per question, with prediction p and human answers A (both passed through
    `normalize_answer`):

    - 3 or more answers: the official VQA v2 score (vqaEval.py): the mean, over
      the subsets of annotators that leave one out, of
      `min(#{a in subset : a == p} / 3, 1)`. With 10 answers, 1, 2 and 3
      agreeing annotators give 0.3, 0.6 and 0.9; 4 or more give 1.
    - 1 or 2 answers: exact match, 1 if p is in A, else 0.

    The answer normalization is lighter than the official one (see
    `normalize_answer`), so answers that differ only in the parts it leaves out
    are not matched.

    Args:
        predicted: One predicted answer per question.
        answers: The human answers of each question (at least one each).

    Returns:
        The mean score in [0, 1], as a Python float.

    Raises:
        ValueError: If the lengths differ, there are no questions, a question
            has no answer, or an answer is not a string; the message names the
            question.

    Example:

    >>> ten_answers = ["red"] * 2 + ["blue"] * 8
    >>> round(vqa_accuracy(["red"], [ten_answers]), 4)
    0.6
    >>> vqa_accuracy(["Blue."], [ten_answers])
    1.0
    """
    pairs = _validated_pairs(predicted, answers)
    return sum(_question_score(p, a) for p, a in pairs) / len(pairs)


def vqa_metrics(
    predicted: Sequence[str],
    answers: Sequence[Sequence[str]],
    question_types: Sequence[str] | None = None,
) -> dict[str, float]:
    """VQA accuracy overall and, given question types, per type.

    Args:
        predicted: One predicted answer per question.
        answers: The human answers of each question, as for `vqa_accuracy`.
        question_types: Optional type of each question (for example "color",
            "count", "shape"); each type gets its own mean accuracy.

    Returns:
        `{"vqa_accuracy": overall}` followed, when `question_types` is given,
        by `"vqa_accuracy/<type>"` for each type in sorted order, as Python
        floats in [0, 1].

    Raises:
        ValueError: As `vqa_accuracy`, and if `question_types` does not have
            one string per question.

    Example:

    >>> vqa_metrics(["red", "3"], [["red"], ["2"]], ["color", "count"])
    {'vqa_accuracy': 0.5, 'vqa_accuracy/color': 1.0, 'vqa_accuracy/count': 0.0}
    """
    pairs = _validated_pairs(predicted, answers)
    scores = [_question_score(p, a) for p, a in pairs]
    metrics = {"vqa_accuracy": sum(scores) / len(scores)}
    if question_types is None:
        return metrics
    if isinstance(question_types, str) or not isinstance(question_types, Sequence):
        raise ValueError(
            "`question_types` must be a sequence with one type per question, "
            f"got {type(question_types).__name__}."
        )
    if len(question_types) != len(scores):
        raise ValueError(
            f"`question_types` has {len(question_types)} entries but there are "
            f"{len(scores)} questions."
        )
    scores_by_type: dict[str, list[float]] = collections.defaultdict(list)
    for index, (question_type, score) in enumerate(zip(question_types, scores, strict=True)):
        if not isinstance(question_type, str):
            raise ValueError(
                f"`question_types[{index}]` must be a string, got "
                f"{type(question_type).__name__}: {question_type!r}."
            )
        scores_by_type[question_type].append(score)
    for question_type in sorted(scores_by_type):
        type_scores = scores_by_type[question_type]
        metrics[f"vqa_accuracy/{question_type}"] = sum(type_scores) / len(type_scores)
    return metrics


def most_frequent_answer(train_answers: Iterable[str]) -> str:
    """Returns the most frequent answer after `normalize_answer`.

    Answers that normalize to `""` are skipped. Ties go to the
    lexicographically smallest of the tied normalized answers, whatever the
    input order.

    Args:
        train_answers: Raw answers, typically every answer of the training split.

    Returns:
        The normalized most frequent answer.

    Raises:
        ValueError: If no answer has a word, or an answer is not a string.

    Example:

    >>> most_frequent_answer(["Yes", "no", "yes.", "2", "No", "blue"])
    'no'
    """
    return most_frequent(map(normalize_answer, train_answers), "train_answers", "answer")


def most_frequent_answer_baseline(
    train_answers: Sequence[str],
    answers: Sequence[Sequence[str]],
    question_types: Sequence[str] | None = None,
) -> dict[str, float]:
    """Scores the blind baseline that gives one answer to every question.

    The answer is `most_frequent_answer(train_answers)`, ignoring both image
    and question; a model should beat it by a wide margin.

    Args:
        train_answers: The answers to take the most frequent one from (the
            training split, so the baseline never sees the test set).
        answers: The human answers of each test question, as for `vqa_accuracy`.
        question_types: Optional type of each test question, as for `vqa_metrics`.

    Returns:
        `vqa_metrics` of the baseline: the same keys, as Python floats.

    Raises:
        ValueError: As `most_frequent_answer` and `vqa_metrics`.

    Example:

    >>> most_frequent_answer_baseline(["circle", "square", "circle"], [["circle"], ["square"]])
    {'vqa_accuracy': 0.5}
    """
    answer = most_frequent_answer(train_answers)
    if isinstance(answers, str) or not isinstance(answers, Sequence):
        raise ValueError(
            "`answers` must be a sequence with one entry per question, "
            f"got {type(answers).__name__}."
        )
    return vqa_metrics([answer] * len(answers), answers, question_types)
