"""The model cores (layers, builders and the tasks' compile settings) train under
KERAS_BACKEND=jax too, with TensorFlow unimportable, as on the GPU machine.

Keras reads the backend once, at import, so the JAX run is a subprocess. It builds
every registered model at its default sizes on random tiny inputs (one fixed batch of
4, 32 px images, 8 tokens with padding), fits 3 steps under `jax.jit`, and reports
per model the losses, whether each trainable weight moved, and the array type the
weights live in. XLA's CPU backend optimisation is turned down: the test checks that
the step compiles and trains, not how fast it runs (it halves compile time).
"""

import json
import textwrap

import numpy as np
import pytest

from models import model_names
from tests.models.jax_processes import run_without_tensorflow

UNUSED_HEADS = ("region_projection/", "cnn/pooled_projection/")

SCRIPT = textwrap.dedent(
    """
    import json

    import keras
    import numpy as np

    from models import get_model_spec, model_names
    from training.compiling import compile_for_task

    BATCH, SIZE, LENGTH, VOCABULARY, CLASSES = 4, 32, 8, 20, 3
    results = {"backend": keras.backend.backend(), "models": {}}
    for name in model_names():
        keras.utils.set_random_seed(0)
        spec = get_model_spec(name)
        arguments = {"vocabulary_size": VOCABULARY, "sequence_length": LENGTH, "image_size": SIZE}
        if spec.task in ("classification", "vqa"):
            arguments["num_classes"] = CLASSES
        model = spec.builder(**arguments)
        compile_for_task(spec.task, model, spec.training_defaults["learning_rate"])
        rng = np.random.default_rng(0)
        tokens = rng.integers(1, VOCABULARY, (BATCH, LENGTH)).astype("int32")
        tokens[:, LENGTH - 2 :] = 0  # padding, so the masks are exercised
        inputs = {"image": rng.random((BATCH, SIZE, SIZE, 3), dtype=np.float32), "tokens": tokens}
        if spec.task == "captioning":  # teacher forcing: next tokens, padding weighted out
            inputs["tokens"] = tokens[:, :-1]
            targets = tokens[:, 1:]
            weights = (targets != 0).astype("float32")
        elif spec.task == "retrieval":  # the in-batch contrastive losses ignore the targets
            targets, weights = np.zeros((BATCH,), "float32"), None
        else:
            targets, weights = np.arange(BATCH) % CLASSES, None
        before = [np.array(weight) for weight in model.trainable_weights]
        history = model.fit(
            inputs, targets, sample_weight=weights, batch_size=BATCH, epochs=3, verbose=0
        )
        moved = [
            bool(np.any(np.array(weight) != old))
            for weight, old in zip(model.trainable_weights, before)
        ]
        results["models"][name] = {
            "loss": [float(value) for value in history.history["loss"]],
            "moved": moved,
            "weights": [weight.path for weight in model.trainable_weights],
            "array_type": type(model.trainable_weights[0].value).__module__,
            "jit_compile": bool(model.jit_compile),
        }
    results["tensorflow_modules"] = [
        name for name, module in sys.modules.items() if name.startswith("tensorflow") and module
    ]
    for name in ABSENT:  # WITHOUT_TENSORFLOW (jax_processes.py) made these unimportable
        del sys.modules[name]
    try:
        from layers.hub_layer import HubLayer

        HubLayer("/nonexistent/hub/module")
        results["hub_error"] = None
    except ValueError as error:
        results["hub_error"] = str(error)
    json.dump(results, sys.stdout)
    """
)


@pytest.fixture(scope="module")
def jax_run():
    pytest.importorskip("jax", reason="JAX is in requirements-test.txt")
    completed = run_without_tensorflow(SCRIPT)
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_every_model_trains_under_jax_without_tensorflow(jax_run):
    assert jax_run["backend"] == "jax"
    assert jax_run["tensorflow_modules"] == []
    assert sorted(jax_run["models"]) == model_names()
    for name, result in jax_run["models"].items():
        losses = result["loss"]
        assert np.all(np.isfinite(losses)), (name, losses)
        assert losses[-1] < losses[0], (name, losses)
        assert result["array_type"].startswith("jax"), (name, result["array_type"])
        assert result["jit_compile"], name
        still = [
            path
            for path, moved in zip(result["weights"], result["moved"], strict=True)
            if not moved
        ]
        # The image encoder returns pooled and region features; a model that reads only
        # one leaves the other's head without gradient (under TensorFlow too). Every
        # other weight must move.
        assert all(path.startswith(UNUSED_HEADS) for path in still), (name, still)
        assert len(still) < len(result["weights"]) / 2, (name, still)


@pytest.mark.slow
def test_a_hub_encoder_under_jax_names_the_backend_it_needs(jax_run):
    message = jax_run["hub_error"]
    assert message and "KERAS_BACKEND=tensorflow" in message and "'jax'" in message
