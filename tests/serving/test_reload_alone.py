"""Every export loads and serves in a new process that imports only TensorFlow, and
serves what the training-side path (tf.data decoding, then the model) computes."""

import numpy as np
import pytest
import tensorflow as tf

from datasets.pipeline import image_dataset
from models import model_names
from tests.serving.conftest import OPTIONS
from tests.serving.fresh_process import reload_all_in_fresh_process


@pytest.fixture(scope="module")
def reloaded(exports, tmp_path_factory) -> dict:
    """Per model name: what one process that imports only TensorFlow got from its export
    (one process for all: each start costs 5 s)."""
    jobs = [(export.version_dir, export.image_path, export.text) for export in exports.values()]
    results = reload_all_in_fresh_process(jobs, cwd=tmp_path_factory.mktemp("reload"))
    return dict(zip(exports, results, strict=True))


def check_captioning_export(results, export, decoded, texts):
    module = export.module
    assert "serving_default" in results
    captions = results["serving_default"]["caption"]
    assert captions == [c.decode() for c in module.generate(decoded).numpy()]
    assert len(captions) == 2 and captions[0] == captions[1] and captions[0].strip()


def check_retrieval_export(results, export, decoded, texts):
    module, model = export.module, export.model
    tokens = export.vocabulary.encode(texts, OPTIONS.sequence_length)
    if hasattr(module, "pair_scorer"):  # joint scoring: no standalone embeddings
        assert set(results) == {"serving_default"}
        expected = module.pair_scorer(
            model.get_layer("image_encoder")(decoded),
            model.get_layer("text_encoder")(tokens),
            aligned=True,
        )
        np.testing.assert_allclose(results["serving_default"]["score"], expected, atol=1e-4)
        return
    assert set(results) == {"serving_default", "encode_image", "encode_text"}
    image_embedding = np.array(results["encode_image"]["embedding"])
    text_embedding = np.array(results["encode_text"]["embedding"])
    np.testing.assert_allclose(np.linalg.norm(image_embedding, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text_embedding, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(
        image_embedding, model.get_layer("image_encoder")(decoded), atol=1e-5
    )
    np.testing.assert_allclose(text_embedding, model.get_layer("text_encoder")(tokens), atol=1e-5)
    expected_scores = np.sum(image_embedding * text_embedding, axis=1)
    np.testing.assert_allclose(results["serving_default"]["score"], expected_scores, atol=1e-5)


def label_export_checker(label_key: str, scores_key: str):
    def check(results, export, decoded, texts):
        module, vocabulary = export.module, export.vocabulary
        assert set(results) == {"serving_default"}
        served = results["serving_default"]
        expected = module.probabilities(decoded, texts).numpy()
        np.testing.assert_allclose(served[scores_key], expected, atol=1e-5)
        np.testing.assert_allclose(np.sum(served[scores_key], axis=1), 1.0, atol=1e-5)
        assert served[label_key] == [vocabulary.labels[i] for i in np.argmax(expected, axis=1)]

    return check


# DESIGN.md's serving contract: the inputs of each task's serving_default.
SERVING_INPUTS = {
    "captioning": ["image_bytes"],
    "retrieval": ["image_bytes", "text"],
    "classification": ["image_bytes", "text"],
    "vqa": ["image_bytes", "question"],
}

CHECK_EXPORT = {
    "captioning": check_captioning_export,
    "retrieval": check_retrieval_export,
    "classification": label_export_checker("label", "probabilities"),
    "vqa": label_export_checker("answer", "scores"),
}


@pytest.mark.parametrize("name", model_names())
def test_an_export_serves_alone_what_the_training_path_computes(name, exports, reloaded):
    export = exports[name]
    assert export.version_dir.name == "1"
    assert reloaded[name]["project_modules"] == []
    results = dict(reloaded[name]["results"])
    refused = results.pop("refused")
    assert results.pop("inputs")["serving_default"] == SERVING_INPUTS[export.task]
    assert refused and all(all(checks) for checks in refused.values()), refused
    # Any train/serve skew in the exported preprocessing shows up as a difference here.
    decoded = next(
        iter(image_dataset([export.image_path] * 2, image_size=OPTIONS.image_size, batch_size=2))
    )
    texts = tf.constant([export.text, "a blue circle"])
    CHECK_EXPORT[export.task](results, export, decoded, texts)
