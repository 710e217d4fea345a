"""Captioners start their next-token bias at the training tokens' log frequencies."""

import numpy as np
import pytest

from datasets.text import END_ID, PAD_ID, START_ID, WordVocabulary
from models.show_and_tell import build_show_and_tell
from models.show_attend_tell import build_show_attend_tell
from models.token_prior import UNSEEN_COUNT, log_frequencies
from tasks import captioning
from tasks.options import TaskOptions

SIZES = {"feature_dim": 8, "embedding_dim": 4, "units": 8, "image_size": 32}


class Captions:
    """The one method of CaptionExamples that model_arguments reads."""

    def all_captions(self):
        return ["red circle", "red square", "red red circle"]


def test_log_frequencies_are_the_shares_of_real_targets():
    prior = log_frequencies(np.array([[5, 5, 6, 0, 0], [5, 3, 0, 0, 0]]), vocabulary_size=8)
    shares = np.exp(prior)
    assert shares.sum() == pytest.approx(1.0)
    assert shares[5] == pytest.approx(3 / (5 + 5 * UNSEEN_COUNT))
    assert shares[PAD_ID] == shares[7] == pytest.approx(UNSEEN_COUNT / (5 + 5 * UNSEEN_COUNT))


def test_the_captioning_task_counts_the_training_captions_targets():
    vocabulary = WordVocabulary.from_texts(Captions().all_captions())
    options = TaskOptions(sequence_length=6)
    prior = captioning.model_arguments(vocabulary, options, Captions())["token_log_prior"]
    red, circle, square = (vocabulary.tokens.index(word) for word in ("red", "circle", "square"))
    # 7 words and 3 <end>s are the targets; <start> and padding never are.
    assert np.exp(prior[[red, END_ID, circle, square]]) == pytest.approx(
        np.array([4, 3, 2, 1]) / (10 + 3 * UNSEEN_COUNT)
    )
    assert prior[START_ID] == prior[PAD_ID] < prior[square]
    assert "token_log_prior" not in captioning.model_arguments(vocabulary, options)


@pytest.mark.parametrize("builder", [build_show_and_tell, build_show_attend_tell])
def test_the_builders_start_the_next_token_bias_at_the_prior(builder):
    prior = np.log(np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32))
    model = builder(vocabulary_size=4, sequence_length=5, token_log_prior=prior, **SIZES)
    bias = model.get_layer("caption_decoder").get_layer("next_token").bias
    np.testing.assert_allclose(np.asarray(bias), prior)
    with pytest.raises(ValueError, match=r"token_log_prior has shape \(3,\)"):
        builder(vocabulary_size=4, sequence_length=5, token_log_prior=prior[:3], **SIZES)
