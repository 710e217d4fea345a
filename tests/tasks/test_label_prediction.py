"""Classification and VQA task logic: labels, class weights, datasets, errors."""

import numpy as np
import pytest

from datasets.labelled_pairs import LabelledPairs
from tasks import classification, vqa
from tasks.label_prediction import (
    UNKNOWN_LABEL_ID,
    balanced_class_weights,
    build_label_vocabulary,
)
from tasks.options import TaskOptions

OPTIONS = TaskOptions(image_size=32, batch_size=4, sequence_length=8)


def pairs(labels, world, source="rows.jsonl"):
    image = str(world / "images" / "train" / "000001.jpg")
    texts = [f"a red circle number {i}" for i in range(len(labels))]
    return LabelledPairs([image] * len(labels), texts, list(labels), source)


def test_labels_are_ordered_by_frequency_then_name(tiny_shapes_world):
    vocabulary = build_label_vocabulary(
        pairs(["b", "a", "c", "c", "b"], tiny_shapes_world), OPTIONS
    )
    assert vocabulary.labels == ("b", "c", "a")
    np.testing.assert_array_equal(vocabulary.label_ids(["a", "zzz", "b"]), [2, UNKNOWN_LABEL_ID, 0])


def test_a_single_training_label_is_refused(tiny_shapes_world):
    with pytest.raises(ValueError, match="rows.jsonl.*at least 2 distinct"):
        build_label_vocabulary(pairs(["yes", "yes"], tiny_shapes_world), OPTIONS)


def test_balanced_weights_give_every_class_the_same_total():
    label_ids = np.array([0, 0, 0, 1, 2, 2])
    weights = balanced_class_weights(label_ids, 4)
    np.testing.assert_allclose(weights, [6 / 9, 6 / 3, 6 / 6, 0.0])
    totals = np.bincount(label_ids, weights=weights[label_ids])
    np.testing.assert_allclose(totals, [2.0, 2.0, 2.0])


def test_class_weight_balanced_puts_sample_weights_in_the_training_data(tiny_shapes_world):
    train = pairs(["a", "a", "a", "b"] * 2, tiny_shapes_world)
    vocabulary = classification.build_vocabulary(train, OPTIONS)
    balanced = TaskOptions(**{**OPTIONS.__dict__, "class_weight": "balanced"})
    batch = next(iter(classification.make_dataset(train, vocabulary, balanced, training=True)))
    inputs, labels, weights = batch
    expected = np.where(labels.numpy() == vocabulary.labels.index("a"), 8 / 12, 8 / 4)
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-6)
    assert inputs["tokens"].shape == (4, OPTIONS.sequence_length)
    unweighted = next(iter(classification.make_dataset(train, vocabulary, OPTIONS, True)))
    assert len(unweighted) == 2


def test_classification_refuses_a_label_unseen_in_training(tiny_shapes_world):
    vocabulary = classification.build_vocabulary(pairs(["a", "b"], tiny_shapes_world), OPTIONS)
    with pytest.raises(ValueError, match=r"test.jsonl: labels not in the training data: \['c'\]"):
        classification.make_dataset(
            pairs(["a", "c"], tiny_shapes_world, "test.jsonl"), vocabulary, OPTIONS, False
        )


def test_vqa_trains_only_on_answers_in_the_vocabulary(tiny_shapes_world, monkeypatch, capsys):
    monkeypatch.setattr(vqa, "MAX_ANSWERS", 2)
    train = pairs(["yes", "yes", "no", "no", "2"], tiny_shapes_world)
    vocabulary = vqa.build_vocabulary(train, OPTIONS)
    assert vocabulary.labels == ("no", "yes")
    assert "1 of 5 training questions have an answer outside" in capsys.readouterr().out
    batches = vqa.make_dataset(train, vocabulary, OPTIONS, training=False)
    labels = np.concatenate([batch[1].numpy() for batch in batches])
    assert sorted(labels.tolist()) == [0, 0, 1, 1]


def test_question_type_is_the_first_two_words():
    assert vqa.question_type("What colour is the circle?") == "what colour"
    assert vqa.question_type("is there a red square?") == "is there"
