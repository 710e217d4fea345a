"""Trains one registered model per task (MIRRORED_MODELS) for a few steps under
MirroredStrategy over two logical CPUs with the zoo's own data pipeline and compile
settings; prints one JSON line that tests/training/test_every_model_mirrored.py checks.

python tests/training/every_model_script.py SHAPES_WORLD_DIR

The logical devices must exist before TensorFlow initialises, hence a script (one for
every model: a process start and the import of TensorFlow take most of the time).
"""

import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from training.lean_import import import_tensorflow  # noqa: E402

import_tensorflow()  # before Keras imports it, without its unused optional imports
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from models.registry import get_model_spec  # noqa: E402
from tasks import get_task  # noqa: E402
from tasks.options import TaskOptions  # noqa: E402
from tests.models.test_registry_models import shapes_split  # noqa: E402
from training.loop import Trainer  # noqa: E402

STEPS = 2
# One model per task, the one with the most to get wrong across replicas: the custom
# LSTM gradient (captioning, vqa), the in-batch contrastive loss over the global batch
# (retrieval), a fusion (classification). Each model costs 8 to 13 s of tracing here;
# all nine took 80 to 104 s of the suite's 15 minutes. The others share these tasks'
# losses, metrics and steps; every model trains on one device in test_registry_models.
MIRRORED_MODELS = ("show_and_tell", "dual_encoder", "fusion_classifier", "vqa")
OPTIONS = TaskOptions(image_size=32, batch_size=8, sequence_length=12, beam_size=2, seed=0)


def train(name: str, strategy: tf.distribute.Strategy, world: Path) -> dict:
    """A few steps of `name` built as train.py builds it, at its default learning rate;
    what moved and what is finite."""
    keras.utils.set_random_seed(0)
    spec = get_model_spec(name)
    task = get_task(spec.task)
    examples = shapes_split(spec.task, world)
    vocabulary = task.build_vocabulary(examples, OPTIONS)
    with strategy.scope():
        model = spec.builder(**task.model_arguments(vocabulary, OPTIONS, examples))
        task.compile_model(model, spec.training_defaults["learning_rate"], OPTIONS)
    dataset = task.make_dataset(examples, vocabulary, OPTIONS, training=True).take(STEPS)
    before = [variable.numpy() for variable in model.trainable_variables]
    history = Trainer(model, strategy).fit(dataset, 1)
    unmoved = [
        variable.path
        for variable, start in zip(model.trainable_variables, before, strict=True)
        if np.array_equal(variable.numpy(), start)
    ]
    # Every replica holds the same copy of each variable after the steps.
    replica_difference = max(
        float(np.max(np.abs(copy.numpy() - variable.value.values[0].numpy())))
        for variable in model.trainable_variables
        for copy in variable.value.values
    )
    return {
        "replicas": len(model.trainable_variables[0].value.values),
        "steps": int(model.optimizer.iterations.numpy()),
        "loss": history["loss"][0],
        "loss_finite": math.isfinite(history["loss"][0]),
        "weights_finite": all(np.all(np.isfinite(variable.numpy())) for variable in model.weights),
        "unmoved": unmoved,
        "trainable": len(before),
        "replica_difference": replica_difference,
    }


def main(world: str) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results = {name: train(name, strategy, Path(world)) for name in MIRRORED_MODELS}
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])
