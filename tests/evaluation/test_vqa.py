import doctest
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation import vqa
from evaluation.vqa import (
    most_frequent_answer,
    most_frequent_answer_baseline,
    normalize_answer,
    vqa_accuracy,
    vqa_metrics,
)

ROOT = Path(__file__).resolve().parents[2]


def ten_answers(prediction, agreeing):
    """Ten human answers, `agreeing` of them equal to `prediction`."""
    others = ["other"] * 4 + ["something", "else", "entirely", "x", "y", "z"]
    return [prediction] * agreeing + others[: 10 - agreeing]


@pytest.mark.parametrize(
    "raw, normalized",
    [
        ("Yes", "yes"),
        ("  yes.  ", "yes"),
        ("yes . ", "yes"),
        ("Two\tRed\n  Squares", "two red squares"),
        ("2.5", "2.5"),
        ("", ""),
        (" . ", ""),
        # Left to the official script's fuller processing:
        ("yes!", "yes!"),
        ("two", "two"),
        ("a dog", "a dog"),
        ("dont", "dont"),
    ],
)
def test_normalize_answer(raw, normalized):
    assert normalize_answer(raw) == normalized


def test_normalize_answer_rejects_non_strings():
    with pytest.raises(ValueError, match="got int: 3"):
        normalize_answer(3)


@pytest.mark.parametrize(
    "agreeing, expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)]
)
def test_soft_accuracy_with_ten_answers(agreeing, expected):
    assert vqa_accuracy(["red"], [ten_answers("red", agreeing)]) == pytest.approx(expected)


def test_soft_accuracy_compares_normalized_answers():
    answers = ["Red.", "red", " RED ", "blue"]
    # Leave-one-out over 4 annotators: 3 subsets keep 2 reds, 1 keeps all 3.
    assert vqa_accuracy(["red"], [answers]) == pytest.approx((3 * 2 / 3 + 1) / 4)
    assert vqa_accuracy(["Blue."], [answers]) == pytest.approx(3 * (1 / 3) / 4)


def test_three_answers_are_scored_softly_and_fewer_by_exact_match():
    assert vqa_accuracy(["red"], [["red", "blue", "green"]]) == pytest.approx(2 / 9)
    assert vqa_accuracy(["red"], [["red", "blue"]]) == 1.0
    assert vqa_accuracy(["green"], [["red", "blue"]]) == 0.0


def test_exact_match_with_one_answer():
    predicted = ["circle", "Square.", "3", "red"]
    answers = [["circle"], ["square"], ["three"], ["blue"]]
    assert vqa_accuracy(predicted, answers) == 0.5


def test_accuracy_is_the_mean_over_questions():
    predicted = ["red", "two", "yes"]
    answers = [ten_answers("red", 2), ["two"], ten_answers("no", 3)]
    assert vqa_accuracy(predicted, answers) == pytest.approx((0.6 + 1 + 0) / 3)
    assert type(vqa_accuracy(predicted, answers)) is float


def test_vqa_metrics_per_question_type():
    predicted = ["red", "3", "circle", "blue"]
    answers = [["red"], ["2"], ["circle"], ten_answers("blue", 1)]
    types = ["color", "count", "shape", "color"]
    metrics = vqa_metrics(predicted, answers, types)
    assert list(metrics) == [
        "vqa_accuracy",
        "vqa_accuracy/color",
        "vqa_accuracy/count",
        "vqa_accuracy/shape",
    ]
    assert metrics["vqa_accuracy"] == pytest.approx((1 + 0 + 1 + 0.3) / 4)
    assert metrics["vqa_accuracy/color"] == pytest.approx((1 + 0.3) / 2)
    assert metrics["vqa_accuracy/count"] == 0.0
    assert metrics["vqa_accuracy/shape"] == 1.0
    assert all(type(value) is float for value in metrics.values())


def test_vqa_metrics_without_types():
    assert vqa_metrics(["red"], [["red"]]) == {"vqa_accuracy": 1.0}


@pytest.mark.parametrize(
    "predicted, answers, match",
    [
        (["a", "b"], [["a"]], "`predicted` has 2 answers but `answers` has 1 questions"),
        ([], [], "`answers` is empty"),
        ("ab", [["a"], ["b"]], "`predicted` must be a sequence .* got str"),
        (["a"], ["a"], r"`answers\[0\]` must be a sequence of answer strings, got str: 'a'"),
        (["a", "b"], [["a"], []], r"`answers\[1\]` is empty"),
        ([1], [["1"]], r"`predicted\[0\]` must be a string, got int: 1"),
        (["a"], [["a", None]], r"`answers\[0\]\[1\]` must be a string, got NoneType"),
    ],
)
def test_bad_inputs_raise_value_error(predicted, answers, match):
    with pytest.raises(ValueError, match=match):
        vqa_accuracy(predicted, answers)


@pytest.mark.parametrize(
    "types, match",
    [
        (["color"], "`question_types` has 1 entries but there are 2 questions"),
        ("cc", "`question_types` must be a sequence .* got str"),
        (["color", 7], r"`question_types\[1\]` must be a string, got int: 7"),
    ],
)
def test_bad_question_types_raise_value_error(types, match):
    with pytest.raises(ValueError, match=match):
        vqa_metrics(["a", "b"], [["a"], ["b"]], types)


def test_most_frequent_answer_counts_normalized_answers():
    assert most_frequent_answer(["no", "No", "yes", "Yes.", "yes", "2"]) == "yes"


def test_most_frequent_answer_breaks_ties_alphabetically_and_skips_empty():
    assert most_frequent_answer(["square", "circle", "", ".", "  "]) == "circle"
    assert most_frequent_answer(["circle", "square"]) == most_frequent_answer(["square", "circle"])


def test_most_frequent_answer_needs_a_word():
    with pytest.raises(ValueError, match="`train_answers` has no answer with a word"):
        most_frequent_answer(["", " . "])


def test_most_frequent_answer_baseline():
    train = ["circle", "Circle", "square", "triangle"]
    answers = [["circle"], ["square"], ten_answers("circle", 2), ["triangle"]]
    baseline = most_frequent_answer_baseline(train, answers)
    assert baseline == {"vqa_accuracy": pytest.approx((1 + 0 + 0.6 + 0) / 4)}


def test_most_frequent_answer_baseline_per_type():
    baseline = most_frequent_answer_baseline(
        ["yes", "yes", "red"], [["yes"], ["no"], ["red"]], ["yes/no", "yes/no", "color"]
    )
    assert baseline == {
        "vqa_accuracy": pytest.approx(1 / 3),
        "vqa_accuracy/color": 0.0,
        "vqa_accuracy/yes/no": 0.5,
    }


def test_docstring_examples_run():
    results = doctest.testmod(vqa, verbose=False)
    assert results.failed == 0
    assert results.attempted > 0


def test_new_modules_do_not_import_tensorflow():
    code = (
        "import sys\n"
        "import evaluation.classification, evaluation.vqa\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
        "assert 'keras' not in sys.modules, 'keras was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
