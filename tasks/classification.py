"""Image+text classification: one label per (image, text) pair, binary or multi-class."""

import math

import keras
import numpy as np
import tensorflow as tf

from datasets.decode_errors import DecodeErrorLog
from datasets.labelled_pairs import LabelledPairs
from evaluation.classification import classification_metrics, majority_class_baseline
from tasks import label_prediction
from tasks.evaluation_result import EvaluationResult
from tasks.label_prediction import LabelPredictor, LabelVocabulary, ServingNames
from tasks.options import TaskOptions

NAME = "classification"
CLASS_WEIGHTS = ("balanced",)
SERVING_NAMES = ServingNames(text="text", label="label", scores="probabilities")

model_arguments = label_prediction.model_arguments
compile_model = label_prediction.compile_model


def build_vocabulary(train: LabelledPairs, options: TaskOptions) -> LabelVocabulary:
    return label_prediction.build_label_vocabulary(train, options)


def known_label_ids(examples: LabelledPairs, vocabulary: LabelVocabulary) -> np.ndarray:
    """Label ids, or ValueError naming the split and a label the model cannot predict."""
    ids = vocabulary.label_ids(examples.labels)
    unknown = sorted({examples.labels[i] for i in np.flatnonzero(ids < 0)})
    if unknown:
        raise ValueError(
            f"{examples.source}: labels not in the training data: {unknown[:5]}; "
            f"the training labels are {list(vocabulary.labels)}."
        )
    return ids


def make_dataset(
    examples: LabelledPairs,
    vocabulary: LabelVocabulary,
    options: TaskOptions,
    training: bool,
    decode_errors: DecodeErrorLog | None = None,
) -> tf.data.Dataset:
    """({"image", "tokens"}, label id), with balanced sample weights if asked for."""
    label_ids = known_label_ids(examples, vocabulary)
    weights = None
    if training and options.class_weight == "balanced":
        per_class = label_prediction.balanced_class_weights(label_ids, len(vocabulary.labels))
        weights = per_class[label_ids]
    return label_prediction.labelled_dataset(
        examples, vocabulary, options, training, weights, decode_errors
    )


def defined(metrics: dict[str, float], source: str) -> dict[str, float]:
    """Drops metrics that are undefined on this split (an AUC when one class is absent)."""
    undefined = [name for name, value in metrics.items() if math.isnan(value)]
    if undefined:
        print(f"{source}: {', '.join(undefined)} undefined (only one class present); not reported")
    return {name: value for name, value in metrics.items() if name not in undefined}


def evaluate(
    model: keras.Model,
    examples: LabelledPairs,
    vocabulary: LabelVocabulary,
    train: LabelledPairs,
    options: TaskOptions,
) -> EvaluationResult:
    """Accuracy, precision, recall, F1, ROC-AUC, PR-AUC (binary: of the second label in
    the training order; multi-class: macro averages)."""
    label_ids = known_label_ids(examples, vocabulary)
    probabilities = label_prediction.predict_probabilities(
        LabelPredictor(model, vocabulary, options, SERVING_NAMES), examples, options
    )
    metrics = defined(classification_metrics(label_ids, probabilities), examples.source)
    baseline = defined(
        majority_class_baseline(
            vocabulary.label_ids(train.labels), label_ids, len(vocabulary.labels)
        ),
        examples.source,
    )
    predicted = [vocabulary.labels[i] for i in np.argmax(probabilities, axis=-1)]
    samples = label_prediction.prediction_samples(examples, predicted, "text")
    return EvaluationResult(metrics, baseline, "majority training class", samples)


def serving_module(model: keras.Model, vocabulary: LabelVocabulary, options: TaskOptions):
    return LabelPredictor(model, vocabulary, options, SERVING_NAMES)
