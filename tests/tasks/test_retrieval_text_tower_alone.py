"""The retrieval exports run the text tower alone with its LSTM's batch in two halves,
and beside the image tower whole."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from datasets.sources import TASK_DATA
from layers import RecurrentTextEncoder, projected_input_lstm
from layers.projected_input_lstm import batch_halves_while_tracing
from models import build_model, get_model_spec
from tasks import get_task
from tasks.options import TaskOptions

OPTIONS = TaskOptions(image_size=32, batch_size=8, sequence_length=12, seed=0)


@pytest.fixture
def traced_halves(monkeypatch):
    """The `batch_halves` of every recurrence traced."""
    seen = []
    recurrence = projected_input_lstm.lstm_sequence

    def recorded(*arguments, batch_halves=False, **settings):
        seen.append(batch_halves)
        return recurrence(*arguments, batch_halves=batch_halves, **settings)

    monkeypatch.setattr(projected_input_lstm, "lstm_sequence", recorded)
    return seen


def test_the_scope_applies_while_tracing_inside_it_only(traced_halves):
    layer = projected_input_lstm.ProjectedInputLSTM(4)
    sequences = np.zeros((2, 3, 5), "float32")
    with batch_halves_while_tracing():
        with batch_halves_while_tracing():
            layer(sequences)
        layer(sequences)  # the inner scope restored the outer one
    layer(sequences)
    assert traced_halves == [True, True, False]


def test_the_scope_leaves_a_bidirectional_lstm_and_an_explicit_false_whole(traced_halves):
    tokens = np.array([[3, 1, 4, 0], [2, 7, 1, 8]], "int32")
    with batch_halves_while_tracing():
        RecurrentTextEncoder(10, 5, 4, bidirectional=True)(tokens)
        projected_input_lstm.ProjectedInputLSTM(4, batch_halves=False)(np.zeros((2, 3, 5)))
    assert traced_halves == [False, False, False]


def test_encode_text_runs_the_halves_and_score_the_whole_batch(tiny_shapes_world, traced_halves):
    keras.utils.set_random_seed(0)
    spec = get_model_spec("dual_encoder")
    task = get_task(spec.task)
    train = TASK_DATA[spec.task].read_shapes(tiny_shapes_world, "train")
    vocabulary = task.build_vocabulary(train, OPTIONS)
    model = build_model(spec, task.model_arguments(vocabulary, OPTIONS), {})
    module = task.serving_module(model, vocabulary, OPTIONS)
    texts = tf.constant([train.captions[0][0], train.captions[1][0], train.captions[2][0]])
    images = tf.constant([tf.io.read_file(path).numpy() for path in train.image_paths[:3]])

    embedded = module.encode_text(texts)["embedding"]
    assert traced_halves == [True]
    scores = module.score(images, texts)["score"]
    assert traced_halves == [True, False]
    # Both graphs compute the same tower: score is the cosine with encode_text's vectors.
    image_vectors = module.encode_image(images)["embedding"]
    np.testing.assert_allclose(
        scores, tf.reduce_sum(image_vectors * embedded, axis=-1), rtol=1e-5, atol=1e-6
    )
