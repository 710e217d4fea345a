"""build_model (user options -> builder arguments) and the pair classifier's variants."""

import keras
import numpy as np
import pytest

from models import build_model, get_model_spec
from models.fusions import FUSION_TRAINING_DEFAULTS, FUSIONS
from models.image_encoders import SMALL_CNN_MINIMUM_SIZE
from models.registry import ModelSpec

# Small sizes so that every build takes a moment; the smallest image the small CNN takes.
IMAGE_SIZE = SMALL_CNN_MINIMUM_SIZE
CLASSIFIER_ARGUMENTS = {
    "vocabulary_size": 30,
    "sequence_length": 8,
    "num_classes": 3,
    "image_size": IMAGE_SIZE,
}
SMALL = {"embedding_dim": 8, "feature_dim": 16, "text_units": 16, "hidden_dim": 16}
RNG = np.random.default_rng(0)
INPUTS = {
    "image": RNG.random((2, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32"),
    "tokens": np.array([[4, 7, 2, 0, 0, 0, 0, 0], [3, 3, 9, 12, 5, 1, 0, 0]], "int32"),
}


def recording_spec(calls):
    def builder(*, vocabulary_size: int, image_encoder: str = "small_cnn", fusion: str = "concat"):
        calls.append({"vocabulary_size": vocabulary_size, "image_encoder": image_encoder,
                      "fusion": fusion})  # fmt: skip
        return "built"

    return ModelSpec("recorder", "classification", "records its arguments", builder)


def test_options_left_as_none_are_not_passed():
    calls = []
    spec = recording_spec(calls)
    options = {"fusion": None, "image_encoder": None, "loss": None, "image_weights": None}
    assert build_model(spec, {"vocabulary_size": 5}, options) == "built"
    assert calls == [{"vocabulary_size": 5, "image_encoder": "small_cnn", "fusion": "concat"}]
    build_model(spec, {"vocabulary_size": 5}, {"fusion": "gated", "loss": None})
    assert calls[-1]["fusion"] == "gated"


def test_an_option_the_builder_does_not_take_names_the_flag():
    calls = []
    with pytest.raises(ValueError, match=r"--image-weights does not apply to model 'recorder'"):
        build_model(recording_spec(calls), {"vocabulary_size": 5}, {"image_weights": "imagenet"})
    assert not calls  # refused before building


def test_fusion_for_show_and_tell_names_the_flag():
    spec = get_model_spec("show_and_tell")
    arguments = {"vocabulary_size": 30, "sequence_length": 8, "image_size": IMAGE_SIZE}
    with pytest.raises(ValueError, match=r"--fusion does not apply to model 'show_and_tell'"):
        build_model(spec, arguments, {"fusion": "gated"})
    with pytest.raises(ValueError, match="--loss"):
        build_model(spec, arguments, {"fusion": None, "loss": "vsepp"})


def test_image_only_refuses_a_fusion():
    with pytest.raises(ValueError, match=r"image_only reads only the image: fusion='gated'"):
        build_model(get_model_spec("image_only"), CLASSIFIER_ARGUMENTS, {"fusion": "gated"})


@pytest.mark.parametrize("option", ["image_encoder", "image_weights", "freeze_image_encoder"])
def test_text_only_refuses_image_options(option):
    value = {"image_encoder": "resnet50", "image_weights": "imagenet"}.get(option, True)
    with pytest.raises(ValueError, match=rf"text_only reads only the text: {option}="):
        build_model(get_model_spec("text_only"), CLASSIFIER_ARGUMENTS, {option: value})


@pytest.mark.parametrize("option, value", [("text_encoder", "gru"), ("freeze_text_encoder", True)])
def test_image_only_refuses_text_options(option, value):
    with pytest.raises(ValueError, match=rf"image_only reads only the image: {option}="):
        build_model(get_model_spec("image_only"), CLASSIFIER_ARGUMENTS, {option: value})


@pytest.mark.parametrize("model", ["fusion_classifier", "vqa"])
def test_unknown_fusion_lists_the_valid_ones(model):
    with pytest.raises(ValueError, match="Unknown fusion 'nope'") as error:
        build_model(get_model_spec(model), CLASSIFIER_ARGUMENTS, {"fusion": "nope"})
    for name in FUSIONS:
        assert name in str(error.value)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_builds_a_fusion_classifier(fusion):
    keras.utils.set_random_seed(0)
    spec = get_model_spec("fusion_classifier")
    model = build_model(spec, {**CLASSIFIER_ARGUMENTS, **SMALL}, {"fusion": fusion})
    assert model.get_layer("fusion") is not None
    logits = model(INPUTS, training=False)
    assert tuple(logits.shape) == (2, 3)
    assert np.all(np.isfinite(logits))


def test_default_fusions_of_the_variants():
    arguments = {**CLASSIFIER_ARGUMENTS, **SMALL}
    classifier = build_model(get_model_spec("fusion_classifier"), arguments, {"fusion": None})
    assert type(classifier.get_layer("fusion")).__name__ == "ConcatFusion"
    vqa = build_model(get_model_spec("vqa"), arguments, {})
    assert type(vqa.get_layer("fusion")).__name__ == "AttentionFusion"
    image_only = build_model(get_model_spec("image_only"), arguments, {})
    assert tuple(image_only(INPUTS).shape) == (2, 3)
    assert not [layer for layer in image_only.layers if layer.name == "fusion"]


def test_an_option_value_brings_its_own_training_defaults():
    def builder(*, fusion: str = "slow"):
        return "built"

    spec = ModelSpec(
        "tuned", "classification", "", builder,
        {"learning_rate": 1e-3, "epochs": 4},
        {"fusion": {"slow": {"learning_rate": 1e-4}}},
    )  # fmt: skip
    # None or absent is the builder's own default, so its settings apply too.
    assert spec.training_settings({}) == {"learning_rate": 1e-4, "epochs": 4}
    assert spec.training_settings({"fusion": None}) == {"learning_rate": 1e-4, "epochs": 4}
    assert spec.training_settings({"fusion": "fast"}) == {"learning_rate": 1e-3, "epochs": 4}


@pytest.mark.parametrize("name", ["fusion_classifier", "vqa"])
def test_the_fusing_variants_take_their_fusions_training_defaults(name):
    spec = get_model_spec(name)
    assert spec.training_settings({}) == spec.training_defaults
    for fusion in FUSIONS:
        expected = {**spec.training_defaults, **FUSION_TRAINING_DEFAULTS.get(fusion, {})}
        assert spec.training_settings({"fusion": fusion}) == expected
    slow = spec.training_settings({"fusion": "cross_attention"})
    assert slow["learning_rate"] < spec.training_defaults["learning_rate"]


@pytest.mark.parametrize("loss, has_scale", [("vsepp", False), ("infonce", True), (None, True)])
def test_retrieval_attention_learns_a_scale_only_for_infonce(loss, has_scale):
    arguments = {
        "vocabulary_size": 30,
        "sequence_length": 8,
        "image_size": IMAGE_SIZE,
        "embedding_dim": 8,
        "feature_dim": 16,
        "text_units": 16,
        "attention_dim": 8,
        "joint_dim": 8,
    }
    model = build_model(get_model_spec("retrieval_attention"), arguments, {"loss": loss})
    scale_weights = [weight for weight in model.weights if "logit_scale" in weight.path]
    assert len(scale_weights) == int(has_scale)
    scorer = model.get_layer("pair_scorer")
    assert scorer.initial_temperature == (0.07 if has_scale else None)
    assert tuple(model(INPUTS).shape) == (2, 2)


def test_retrieval_attention_rejects_an_unknown_loss():
    arguments = {"vocabulary_size": 30, "sequence_length": 8, "image_size": IMAGE_SIZE}
    with pytest.raises(ValueError, match="'triplet'"):
        build_model(get_model_spec("retrieval_attention"), arguments, {"loss": "triplet"})
