"""The VQA task scores VQA v2 questions against all ten human answers (the soft VQA score)."""

import json

import keras
import numpy as np
import pytest
from PIL import Image

from datasets.labelled_pairs import LabelledPairs
from datasets.sources import load_splits
from evaluation.vqa import vqa_accuracy
from tasks import vqa
from tasks.options import TaskOptions

OPTIONS = TaskOptions(image_size=16, batch_size=2, sequence_length=6)
QUESTIONS = [
    # (question_id, image_id, question, ten answers): labels "blue" and "red".
    (11, 1, "What color is the car?", ["blue"] * 8 + ["red"] * 2),
    (12, 2, "What color is the ball?", ["red"] * 6 + ["green"] * 4),
]


def write_vqa_v2(folder):
    images = folder / "val2014"
    images.mkdir(parents=True)
    for _, image_id, _, _ in QUESTIONS:
        Image.new("RGB", (8, 8), (255, 0, 0)).save(images / f"COCO_val2014_{image_id:012d}.jpg")
    questions = [{"image_id": i, "question": q, "question_id": n} for n, i, q, _ in QUESTIONS]
    annotations = [
        {"question_id": n, "image_id": i, "answers": [{"answer": a} for a in answers]}
        for n, i, _, answers in QUESTIONS
    ]
    path = folder / "v2_OpenEnded_mscoco_val2014_questions.json"
    path.write_text(json.dumps({"data_subtype": "val2014", "questions": questions}))
    (folder / "v2_mscoco_val2014_annotations.json").write_text(
        json.dumps({"data_subtype": "val2014", "annotations": annotations})
    )
    return path


def constant_answer_model(vocabulary, answer):
    """A model over {"image", "tokens"} whose logits always pick `answer`."""
    image = keras.Input((OPTIONS.image_size, OPTIONS.image_size, 3), name="image")
    tokens = keras.Input((OPTIONS.sequence_length,), dtype="int32", name="tokens")
    embedded = keras.layers.Embedding(vocabulary.size, 2)(tokens)
    words = keras.layers.GlobalAveragePooling1D()(embedded)
    features = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(image), words])
    dense = keras.layers.Dense(len(vocabulary.labels))
    model = keras.Model({"image": image, "tokens": tokens}, dense(features))
    bias = np.zeros(len(vocabulary.labels), dtype="float32")
    bias[vocabulary.labels.index(answer)] = 5.0
    dense.set_weights([np.zeros_like(dense.get_weights()[0]), bias])
    return model


def test_vqa_v2_evaluation_uses_the_soft_score_over_ten_answers(tmp_path):
    path = write_vqa_v2(tmp_path)
    examples = load_splits("vqa", str(path), test_dataset=str(path))["test"]
    assert examples.labels == ["blue", "red"]
    vocabulary = vqa.build_vocabulary(examples, OPTIONS)
    model = constant_answer_model(vocabulary, "red")

    result = vqa.evaluate(model, examples, vocabulary, examples, OPTIONS)

    # "red" was given by 2 of 10 humans (official score 0.6; neither 0 as against the
    # label "blue", nor 1) and by 6 of 10 (score 1).
    assert result.metrics["vqa_accuracy"] == pytest.approx((0.6 + 1.0) / 2)
    assert result.metrics["vqa_accuracy"] == pytest.approx(
        vqa_accuracy(["red", "red"], [answers for _, _, _, answers in QUESTIONS])
    )
    assert result.metrics["vqa_accuracy/what color"] == pytest.approx(0.8)
    # The blind baseline answers "blue" (the tie of the two labels goes to the smaller):
    # 8 of 10 humans on the first question, none on the second.
    assert result.baseline["vqa_accuracy"] == pytest.approx(0.5)
    assert [sample["predicted"] for sample in result.samples] == ["red", "red"]

    labels_only = LabelledPairs(examples.image_paths, examples.texts, examples.labels, "x")
    exact = vqa.evaluate(model, labels_only, vocabulary, labels_only, OPTIONS)
    assert exact.metrics["vqa_accuracy"] == pytest.approx(0.5)
