"""What classification and VQA share: predict one of K labels for an (image, text) pair.

Both tasks feed {"image", "tokens"} to a model that returns logits [B, K] over
labels seen in training, train with cross-entropy and export a signature taking
raw image bytes and a string; they differ in the label set, the text's name and
the metrics (tasks/classification.py, tasks/vqa.py).
"""

import collections
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from datasets.decode_errors import DecodeErrorLog
from datasets.labelled_pairs import LabelledPairs
from datasets.pipeline import image_text_dataset
from datasets.tokenizers import TextVocabulary, build_text_vocabulary
from serving.guards import (
    images_from_bytes,
    on_nonempty_batch,
    same_batch_size,
    texts_from_strings,
)
from tasks.options import (
    EVALUATION_BATCH_SIZE,
    TaskOptions,
    text_inputs,
    training_pairs_dataset,
)
from training import compiling

UNKNOWN_LABEL_ID = -1


@dataclass(frozen=True)
class LabelVocabulary:
    """The word vocabulary of the texts and the label names, id order.

    Attributes:
        text: vectorizes the texts.
        labels: label (class or answer) names; a label's id is its index.
    """

    text: TextVocabulary
    labels: tuple[str, ...]

    @property
    def size(self) -> int:
        return self.text.size

    @property
    def tokens(self) -> list[str]:
        return self.text.tokens

    def to_text(self) -> str:
        return self.text.to_text()

    def label_ids(self, labels: list[str]) -> np.ndarray:
        """Label names -> ids, UNKNOWN_LABEL_ID for a label not seen in training."""
        index = {label: position for position, label in enumerate(self.labels)}
        return np.array([index.get(label, UNKNOWN_LABEL_ID) for label in labels], dtype=np.int32)


def build_label_vocabulary(
    train: LabelledPairs, options: TaskOptions, max_labels: int | None = None
) -> LabelVocabulary:
    """Words of the training texts; labels of the training examples, most frequent first
    (ties by name), keeping at most `max_labels`."""
    counts = collections.Counter(train.labels)
    labels = sorted(counts, key=lambda label: (-counts[label], label))[:max_labels]
    if len(labels) < 2:
        raise ValueError(
            f"{train.source}: the training labels must hold at least 2 distinct values; "
            f"found {sorted(counts)}."
        )
    words = build_text_vocabulary(train.texts, options.tokenizer, options.max_vocabulary_size)
    return LabelVocabulary(words, tuple(labels))


def model_arguments(vocabulary: LabelVocabulary, options: TaskOptions, train=None) -> dict:
    """The builder's arguments (the training split adds nothing here)."""
    return {
        "vocabulary_size": vocabulary.size,
        "sequence_length": options.sequence_length,
        "image_size": options.image_size,
        "num_classes": len(vocabulary.labels),
    }


def balanced_class_weights(label_ids: np.ndarray, num_classes: int) -> np.ndarray:
    """Weight n / (k * n_c) per class, as scikit-learn's "balanced": each class's total is equal."""
    counts = np.bincount(label_ids, minlength=num_classes).astype(np.float64)
    weights = np.zeros(num_classes)
    present = counts > 0
    weights[present] = len(label_ids) / (present.sum() * counts[present])
    return weights.astype(np.float32)


def labelled_dataset(
    examples: LabelledPairs,
    vocabulary: LabelVocabulary,
    options: TaskOptions,
    training: bool,
    sample_weights: np.ndarray | None = None,
    decode_errors: DecodeErrorLog | None = None,
) -> tf.data.Dataset:
    """Examples with a known label -> ({"image", "tokens"}, label id[, sample weight])."""
    label_ids = vocabulary.label_ids(examples.labels)
    known = np.flatnonzero(label_ids != UNKNOWN_LABEL_ID)
    extras = {"label": label_ids[known]}
    if sample_weights is not None:
        extras["weight"] = sample_weights[known].astype(np.float32)

    def to_inputs(batch):
        inputs = {"image": batch["image"], **text_inputs(batch["text"], vocabulary.text, options)}
        if "weight" in batch:
            return inputs, batch["label"], batch["weight"]
        return inputs, batch["label"]

    return training_pairs_dataset(
        [examples.image_paths[i] for i in known],
        [examples.texts[i] for i in known],
        options,
        to_inputs,
        training,
        extras,
        images=examples.images,
        decode_errors=decode_errors,
    )


def compile_model(model: keras.Model, learning_rate: float, options: TaskOptions) -> None:
    compiling.compile_label_predictor(model, learning_rate)


@dataclass(frozen=True)
class ServingNames:
    """A task's names in its serving signature: the text input, the label and score outputs."""

    text: str
    label: str
    scores: str


class LabelPredictor(tf.Module):
    """(image, text) -> label probabilities and names, for evaluation and export.

    The exported signature reads `image_bytes` and a string input and returns the
    label name and the scores, all under the task's own names (DESIGN's contract).

    Args:
        model: maps {"image", "tokens"} to logits [B, K].
        vocabulary: the words and labels the model was trained with.
        options: image size and text length.
        names: the signature's input and output names.
    """

    def __init__(
        self,
        model: keras.Model,
        vocabulary: LabelVocabulary,
        options: TaskOptions,
        names: ServingNames,
    ):
        super().__init__(name="label_predictor")
        self.model = model
        self.text_vocabulary = vocabulary.text
        self.labels = tf.constant(vocabulary.labels)
        self.image_size = options.image_size
        self.sequence_length = options.sequence_length
        self.options = options
        self.names = names
        # Signature keys are the TensorSpec names, so one function serves every task.
        self.serve = tf.function(
            self._serve,
            input_signature=[
                tf.TensorSpec([None], tf.string, name="image_bytes"),
                tf.TensorSpec([None], tf.string, name=names.text),
            ],
        )

    @tf.function(reduce_retracing=True)
    def probabilities(self, images: tf.Tensor, texts: tf.Tensor) -> tf.Tensor:
        inputs = {"image": images, **text_inputs(texts, self.text_vocabulary, self.options)}
        logits = self.model(inputs, training=False)
        return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)

    def _serve(self, image_bytes: tf.Tensor, texts: tf.Tensor) -> dict:
        """Checks and decodes a request; returns the label names [B] and scores [B, K]."""
        image_bytes, texts = same_batch_size(image_bytes, "image_bytes", texts, self.names.text)
        images = images_from_bytes(image_bytes, self.image_size)
        texts = texts_from_strings(texts, self.names.text, self.sequence_length)

        def labels_and_scores(image_batch, text_batch):
            probabilities = self.probabilities(image_batch, text_batch)
            labels = tf.gather(self.labels, tf.argmax(probabilities, axis=-1))
            return {self.names.label: labels, self.names.scores: probabilities}

        return on_nonempty_batch(labels_and_scores, images, texts)

    def signatures(self) -> dict:
        return {"serving_default": self.serve}


def predict_probabilities(
    predictor: LabelPredictor, examples: LabelledPairs, options: TaskOptions
) -> np.ndarray:
    """Probabilities [N, K] for every example, in order (unknown labels included)."""
    batches = image_text_dataset(
        examples.image_paths,
        examples.texts,
        image_size=options.image_size,
        batch_size=EVALUATION_BATCH_SIZE,
        batch_transform=lambda batch: (batch["image"], batch["text"]),
        training=False,
        images=examples.images,
    )
    return np.concatenate(
        [predictor.probabilities(images, texts).numpy() for images, texts in batches]
    )


def prediction_samples(
    examples: LabelledPairs, predicted: list[str], text_name: str, count: int = 3
) -> list[dict]:
    """A few examples spread over the split with their predicted and expected labels."""
    picks = np.linspace(0, len(examples) - 1, num=min(count, len(examples)), dtype=int)
    return [
        {
            "image": examples.image_paths[i],
            text_name: examples.texts[i],
            "predicted": predicted[i],
            "expected": examples.labels[i],
        }
        for i in picks
    ]
