"""Text backbones by name: shapes, word vectors in the embedding, errors, training."""

import keras
import numpy as np
import pytest

from layers import TransformerTextEncoder
from models.text_encoders import TEXT_ENCODERS, build_text_encoder

SIZES = {"vocabulary_size": 30, "sequence_length": 7, "embedding_dim": 16, "units": 12}
WIDTHS = {"lstm": 12, "bilstm": 12, "gru": 12, "transformer": 16}
TOKENS = np.array([[4, 5, 6, 0, 0, 0, 0], [7, 8, 9, 10, 11, 12, 13]], dtype="int32")


def embedding_weights(model):
    encoder = model.get_layer("encoder")
    if isinstance(encoder, TransformerTextEncoder):
        return encoder.token_embedding.embeddings.numpy()
    return encoder.embedding.embeddings.numpy()


@pytest.mark.parametrize("name", TEXT_ENCODERS)
def test_builds_with_named_input_and_dict_output(name):
    model = build_text_encoder(name, **SIZES, model_name="backbone")
    assert model.name == "backbone"
    assert [tensor.name for tensor in model.inputs] == ["tokens"]
    assert model.inputs[0].dtype == "int32"
    assert tuple(model.inputs[0].shape) == (None, 7)
    outputs = model(TOKENS)
    assert sorted(outputs) == ["mask", "pooled", "sequence"]
    assert tuple(outputs["pooled"].shape) == (2, WIDTHS[name])
    assert tuple(outputs["sequence"].shape) == (2, 7, WIDTHS[name])
    np.testing.assert_array_equal(outputs["mask"], np.asarray(TOKENS) != 0)


@pytest.mark.parametrize("name", TEXT_ENCODERS)
def test_word_vectors_initialise_the_token_embedding(name):
    vectors = np.random.default_rng(1).normal(size=(30, 16)).astype("float32")
    model = build_text_encoder(name, **SIZES, word_vectors=vectors)
    np.testing.assert_array_equal(embedding_weights(model), vectors)
    assert "word_vectors" not in str(model.get_config())
    assert len(str(model.get_config())) < 5000


def test_default_is_lstm_and_random_embedding_without_word_vectors():
    model = build_text_encoder(**SIZES)
    assert model.name == "text_backbone"
    assert model.get_layer("encoder").get_config()["cell"] == "lstm"
    assert np.abs(embedding_weights(model)).max() <= 0.05


def test_word_vectors_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(30, 8\).*\(30, 16\)"):
        build_text_encoder("gru", **SIZES, word_vectors=np.zeros((30, 8), "float32"))


def test_unknown_name_lists_the_encoders():
    with pytest.raises(ValueError, match="'cnn'.*lstm, bilstm, gru, transformer"):
        build_text_encoder("cnn", **SIZES)


def test_bilstm_needs_even_units():
    with pytest.raises(ValueError, match="got 11"):
        build_text_encoder("bilstm", **{**SIZES, "units": 11})


@pytest.mark.parametrize("embedding_dim", [16, 100, 128, 300])
def test_transformer_heads_divide_any_width(embedding_dim):
    model = build_text_encoder(
        "transformer", **{**SIZES, "embedding_dim": embedding_dim, "units": 8}
    )
    assert tuple(model(TOKENS)["pooled"].shape) == (2, embedding_dim)


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_a_classifier_on_top_learns(name):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 30, size=(32, 7)).astype("int32")
    tokens[rng.random((32, 7)) < 0.3] = 0
    labels = (tokens == 5).any(axis=1).astype("int32")
    backbone = build_text_encoder(name, **SIZES, dropout=0.0)
    inputs = keras.Input((7,), dtype="int32", name="tokens")
    classifier = keras.Model(inputs, keras.layers.Dense(2)(backbone(inputs)["pooled"]))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    classifier.compile(keras.optimizers.Adam(1e-2), loss, jit_compile=False)
    # Optimizer slots made eagerly: creating them while tracing the train step is slow.
    classifier.optimizer.build(classifier.trainable_variables)
    before = float(loss(labels, classifier(tokens)))
    classifier.fit(tokens, labels, batch_size=32, epochs=10, verbose=0)
    after = float(loss(labels, classifier(tokens)))
    assert after < 0.8 * before


def halves_of(model) -> bool:
    return model.get_layer("encoder").recurrent.batch_halves


def test_an_lstm_that_runs_alone_takes_the_batch_in_two_halves():
    """Two independent recurrences pay where nothing runs beside the encoder and cost
    where an image tower does, so only a text-only model (or `runs_alone`) asks for
    them, and only the single-direction LSTM (bilstm's directions already take two cores)."""
    assert halves_of(build_text_encoder("lstm", **SIZES, runs_alone=True))
    assert not halves_of(build_text_encoder("lstm", **SIZES))
    assert (
        not build_text_encoder("bilstm", **SIZES, runs_alone=True)
        .get_layer("encoder")
        .recurrent.forward_layer.batch_halves
    )
    transformer = build_text_encoder("transformer", **SIZES, runs_alone=True)
    assert tuple(transformer(TOKENS)["pooled"].shape) == (2, WIDTHS["transformer"])


@pytest.mark.parametrize("variant, alone", [("text_only", True), ("fusion_classifier", False)])
def test_only_the_text_only_classifier_runs_its_lstm_alone(variant, alone):
    from models import build_model, get_model_spec

    arguments = {"vocabulary_size": 30, "sequence_length": 7, "num_classes": 2}
    model = build_model(get_model_spec(variant), arguments, {})
    # None: whole, but for graphs traced in batch_halves_while_tracing.
    assert halves_of(model.get_layer("text_backbone")) is (True if alone else None)
