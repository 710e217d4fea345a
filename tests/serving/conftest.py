"""One export of every registered model, shared by the serving tests of a session.

The models are built untrained (serving behaviour does not depend on the weights)
from the tiny shapes world and exported the way train.py exports them.
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import keras
import pytest
import tensorflow as tf

from datasets.sources import TASK_DATA
from models import build_model, get_model_spec, model_names
from serving.export import export_saved_model
from tasks import get_task
from tasks.options import TaskOptions

OPTIONS = TaskOptions(image_size=32, batch_size=8, sequence_length=12, beam_size=2, seed=0)
WORDPIECE_OPTIONS = dataclasses.replace(OPTIONS, tokenizer="wordpiece", max_vocabulary_size=200)
# One model per family of signatures that read text.
WORDPIECE_MODELS = ("dual_encoder", "vqa")


@dataclass(frozen=True)
class Export:
    """An exported model and what the tests need to call it.

    Attributes:
        name: the registered model.
        task: its task name ("captioning", "retrieval", "classification", "vqa").
        version_dir: the SavedModel folder (saved_models/<model>/<version> layout).
        module: the in-memory serving module that was exported.
        model: the Keras model inside it.
        vocabulary: the task's vocabulary (texts, and labels or answers).
        image_path: a real image of the training split.
        text: a real text of the training split.
    """

    name: str
    task: str
    version_dir: Path
    module: object
    model: keras.Model
    vocabulary: object
    image_path: str
    text: str


def export_untrained(name: str, world: Path, root: Path, options: TaskOptions) -> Export:
    keras.utils.set_random_seed(0)
    spec = get_model_spec(name)
    task = get_task(spec.task)
    train = TASK_DATA[spec.task].read_shapes(world, "train")
    vocabulary = task.build_vocabulary(train, options)
    model = build_model(spec, task.model_arguments(vocabulary, options), {})
    module = task.serving_module(model, vocabulary, options)
    version_dir = export_saved_model(module, root / name)
    text = train.captions[0][0] if hasattr(train, "captions") else train.texts[0]
    return Export(
        name, spec.task, version_dir, module, model, vocabulary, train.image_paths[0], text
    )


@pytest.fixture(scope="session")
def exports(tiny_shapes_world, tmp_path_factory) -> dict[str, Export]:
    """model name -> Export, for every registered model."""
    root = tmp_path_factory.mktemp("exports")
    return {
        name: export_untrained(name, tiny_shapes_world, root, OPTIONS) for name in model_names()
    }


@pytest.fixture(scope="session")
def wordpiece_exports(tiny_shapes_world, tmp_path_factory) -> dict[str, Export]:
    """model name -> Export trained with --tokenizer wordpiece, for WORDPIECE_MODELS."""
    root = tmp_path_factory.mktemp("wordpiece_exports")
    return {
        name: export_untrained(name, tiny_shapes_world, root, WORDPIECE_OPTIONS)
        for name in WORDPIECE_MODELS
    }


@pytest.fixture(scope="session")
def loaded(exports):
    """Model name -> its export loaded once with tf.saved_model.load, as TF Serving loads it."""
    cache = {}

    def load(name: str):
        if name not in cache:
            cache[name] = tf.saved_model.load(str(exports[name].version_dir))
        return cache[name]

    return load
