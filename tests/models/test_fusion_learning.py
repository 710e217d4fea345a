"""Every fusion must learn a task that needs both modalities, at the default learning rate.

The task: an image filled with one of three colours and a one-word text naming a
colour; the label is whether they agree. Neither input alone says anything
about the label, so a fusion that drops or scrambles one modality stays at
chance. This is a floor, not the shapes benchmark: the old post-norm
cross-attention block, which stayed at chance on the shapes matching data,
passes a version of it; the guard for that failure is the layer test that a new
CrossAttentionFusion block starts close to the identity.
"""

import keras
import numpy as np
import pytest

from models import build_model, get_model_spec
from models.fusions import FUSIONS
from models.pair_classifier import CLASSIFICATION_DEFAULTS

COLOURS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], "float32")
SEQUENCE_LENGTH = 6
IMAGE_SIZE = 32  # a 2x2 grid of regions for the attention fusions
STOP_ACCURACY = 0.8


def colour_agreement_data(count: int, seed: int):
    rng = np.random.default_rng(seed)
    image_colour = rng.integers(0, len(COLOURS), count)
    agree = rng.random(count) < 0.5
    other = (image_colour + rng.integers(1, len(COLOURS), count)) % len(COLOURS)
    text_colour = np.where(agree, image_colour, other)
    size = IMAGE_SIZE
    images = np.broadcast_to(COLOURS[image_colour][:, None, None, :], (count, size, size, 3))
    tokens = np.zeros((count, SEQUENCE_LENGTH), "int32")
    tokens[:, 0] = 2  # "the"
    tokens[:, 1] = 3 + text_colour  # the colour word
    tokens[:, 2] = 1  # "."
    inputs = {"image": images + rng.normal(0, 0.05, images.shape).astype("float32"),
              "tokens": tokens}  # fmt: skip
    return inputs, agree.astype("int32")


@pytest.mark.slow
@pytest.mark.parametrize("fusion", FUSIONS)
def test_fusion_classifier_learns_a_task_that_needs_both_modalities(fusion):
    keras.utils.set_random_seed(0)
    arguments = {
        "vocabulary_size": 3 + len(COLOURS),
        "sequence_length": SEQUENCE_LENGTH,
        "num_classes": 2,
        "image_size": IMAGE_SIZE,
        "embedding_dim": 16,
        "feature_dim": 32,
        "text_units": 32,
        "hidden_dim": 32,
    }
    model = build_model(get_model_spec("fusion_classifier"), arguments, {"fusion": fusion})
    model.compile(
        optimizer=keras.optimizers.Adam(CLASSIFICATION_DEFAULTS["learning_rate"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    inputs, labels = colour_agreement_data(256, seed=0)
    held_out = colour_agreement_data(256, seed=1)
    # Up to 16 epochs, stopping once the held-out accuracy is well past the bar: the
    # fusions got there after 2 to 12 (seed 0), and the epochs after it cost half the time.
    stop_when_learned = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: setattr(
            model, "stop_training", logs["val_accuracy"] >= STOP_ACCURACY
        )
    )
    history = model.fit(
        inputs, labels, batch_size=32, epochs=16, verbose=0, validation_data=held_out,
        callbacks=[stop_when_learned],
    )  # fmt: skip
    accuracy = history.history["val_accuracy"][-1]  # past STOP_ACCURACY if it stopped early
    assert accuracy >= 0.7, f"{fusion}: held-out accuracy {accuracy:.3f} (chance is 0.5)"
