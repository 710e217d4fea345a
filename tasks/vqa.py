"""Visual question answering as classification over the training answers (VQA v2 practice)."""

import keras
import numpy as np
import tensorflow as tf

from datasets.decode_errors import DecodeErrorLog
from datasets.labelled_pairs import LabelledPairs
from evaluation.vqa import most_frequent_answer_baseline, vqa_metrics
from tasks import label_prediction
from tasks.evaluation_result import EvaluationResult
from tasks.label_prediction import (
    UNKNOWN_LABEL_ID,
    LabelPredictor,
    LabelVocabulary,
    ServingNames,
)
from tasks.options import TaskOptions

NAME = "vqa"
# The answer vocabulary keeps the most frequent training answers, as VQA v2 models do.
MAX_ANSWERS = 3000
SERVING_NAMES = ServingNames(text="question", label="answer", scores="scores")

model_arguments = label_prediction.model_arguments
compile_model = label_prediction.compile_model


def build_vocabulary(train: LabelledPairs, options: TaskOptions) -> LabelVocabulary:
    vocabulary = label_prediction.build_label_vocabulary(train, options, MAX_ANSWERS)
    outside = int(np.sum(vocabulary.label_ids(train.labels) == UNKNOWN_LABEL_ID))
    if outside:
        print(
            f"answers: {outside} of {len(train)} training questions have an answer outside "
            f"the {MAX_ANSWERS} most frequent; they are not trained on (still evaluated)"
        )
    return vocabulary


def make_dataset(
    examples: LabelledPairs,
    vocabulary: LabelVocabulary,
    options: TaskOptions,
    training: bool,
    decode_errors: DecodeErrorLog | None = None,
) -> tf.data.Dataset:
    """({"image", "tokens"}, answer id) for questions whose answer the model can give."""
    return label_prediction.labelled_dataset(
        examples, vocabulary, options, training, decode_errors=decode_errors
    )


def question_type(question: str) -> str:
    """The first two words ("what colour", "how many", "is there"), a coarse question type."""
    return " ".join(question.lower().split()[:2])


def evaluate(
    model: keras.Model,
    examples: LabelledPairs,
    vocabulary: LabelVocabulary,
    train: LabelledPairs,
    options: TaskOptions,
) -> EvaluationResult:
    """VQA accuracy overall and per question type; every question counts, answerable or not.

    Questions are scored against all their human answers when the examples carry
    them (`answer_lists`, VQA v2's ten: the soft score of evaluation.vqa), else
    against their one label (exact match).
    """
    probabilities = label_prediction.predict_probabilities(
        LabelPredictor(model, vocabulary, options, SERVING_NAMES), examples, options
    )
    predicted = [vocabulary.labels[i] for i in np.argmax(probabilities, axis=-1)]
    answers = examples.answer_lists
    if answers is None:
        answers = [[answer] for answer in examples.labels]
    types = [question_type(question) for question in examples.texts]
    metrics = vqa_metrics(predicted, answers, types)
    baseline = most_frequent_answer_baseline(train.labels, answers)
    samples = label_prediction.prediction_samples(examples, predicted, "question")
    return EvaluationResult(metrics, baseline, "most frequent training answer", samples)


def serving_module(model: keras.Model, vocabulary: LabelVocabulary, options: TaskOptions):
    return LabelPredictor(model, vocabulary, options, SERVING_NAMES)
