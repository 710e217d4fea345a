"""One model per task (every_model_script.MIRRORED_MODELS) trains under MirroredStrategy
over two logical CPUs: a few steps with its own pipeline and compile settings
(tests/training/every_model_script.py, one subprocess for all of them) give a finite
loss, finite weights, a move of every weight that gets a gradient, and the same copy of
every variable on both replicas."""

import pytest

from models.registry import get_model_spec, model_names
from tests.training.every_model_script import MIRRORED_MODELS, STEPS
from tests.training.processes import script_json

UNUSED_HEADS = ("region_projection", "pooled_projection")


@pytest.fixture(scope="module")
def mirrored_runs(tiny_shapes_world) -> dict:
    return script_json("every_model_script.py", tiny_shapes_world, timeout=600)


@pytest.mark.slow
def test_the_script_trains_one_model_of_every_task(mirrored_runs):
    assert sorted(mirrored_runs) == sorted(MIRRORED_MODELS)
    tasks = {get_model_spec(name).task for name in model_names()}
    assert {get_model_spec(name).task for name in MIRRORED_MODELS} == tasks


@pytest.mark.slow
@pytest.mark.parametrize("name", MIRRORED_MODELS)
def test_a_few_mirrored_steps_train_the_model(name, mirrored_runs):
    run = mirrored_runs[name]
    assert run["replicas"] == 2
    assert run["steps"] == STEPS
    assert run["loss_finite"] and run["weights_finite"], run
    # Every variable moves but the image encoder's head that the model does not read (it
    # builds a pooled and a region projection; a model takes one), which gets no gradient.
    assert run["trainable"] > 4
    assert len(run["unmoved"]) <= 2, run
    for path in run["unmoved"]:
        assert path.split("/")[-2] in UNUSED_HEADS, path
    assert run["replica_difference"] == 0.0, run
