"""Registry of model builders by name."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import keras

TASKS = ("captioning", "retrieval", "vqa", "classification")


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its name, task, one-line description, builder and the
    training settings (epochs, batch_size, learning_rate) its default run uses."""

    name: str
    task: str
    description: str
    builder: Callable[..., keras.Model]
    training_defaults: Mapping[str, float] = field(default_factory=dict)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str, task: str, description: str, training_defaults: Mapping[str, float] | None = None
):
    """Registers a builder function under `name`; a duplicate name raises ValueError."""
    if task not in TASKS:
        raise ValueError(f"Model {name!r}: unknown task {task!r}; expected one of {TASKS}.")

    def decorator(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        if name in _REGISTRY:
            raise ValueError(f"A model named {name!r} is already registered.")
        _REGISTRY[name] = ModelSpec(name, task, description, builder, dict(training_defaults or {}))
        return builder

    return decorator


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def get_model_spec(name: str) -> ModelSpec:
    """Returns the spec registered as `name`, or raises ValueError listing the valid names."""
    if name not in _REGISTRY:
        raise ValueError(f"Unknown model {name!r}. Valid models: {', '.join(model_names())}.")
    return _REGISTRY[name]
