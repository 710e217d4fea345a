"""Registry of model builders by name."""

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import keras

TASKS = ("captioning", "retrieval", "vqa", "classification")


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its name, task, one-line description, builder and the
    training settings (epochs, batch_size, learning_rate) its default run uses.

    `option_training_defaults` maps a builder option to {value: settings} for the
    choices that train best with other settings (a fusion that needs a lower
    learning rate); they override `training_defaults` when that value is built.
    `signatures` names the serving signatures its export has (DESIGN.md's table gives
    their inputs), so that clients can refuse a request the server would refuse.
    """

    name: str
    task: str
    description: str
    builder: Callable[..., keras.Model]
    training_defaults: Mapping[str, float] = field(default_factory=dict)
    option_training_defaults: Mapping[str, Mapping[str, Mapping[str, float]]] = field(
        default_factory=dict
    )
    signatures: tuple[str, ...] = ("serving_default",)

    def training_settings(self, options: Mapping) -> dict:
        """The training defaults for building this model with `options` (flag -> value;
        None or absent is the builder's own default for that option)."""
        settings = dict(self.training_defaults)
        parameters = inspect.signature(self.builder).parameters
        for option, by_value in self.option_training_defaults.items():
            value = options.get(option)
            if value is None and option in parameters:
                value = parameters[option].default
            settings.update(by_value.get(value, {}))
        return settings


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    task: str,
    description: str,
    training_defaults: Mapping[str, float] | None = None,
    option_training_defaults: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
    signatures: tuple[str, ...] = ("serving_default",),
):
    """Registers a builder function under `name`; a duplicate name raises ValueError."""
    if task not in TASKS:
        raise ValueError(f"Model {name!r}: unknown task {task!r}; expected one of {TASKS}.")

    def decorator(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        if name in _REGISTRY:
            raise ValueError(f"A model named {name!r} is already registered.")
        _REGISTRY[name] = ModelSpec(
            name,
            task,
            description,
            builder,
            dict(training_defaults or {}),
            dict(option_training_defaults or {}),
            tuple(signatures),
        )
        return builder

    return decorator


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def get_model_spec(name: str) -> ModelSpec:
    """Returns the spec registered as `name`, or raises ValueError listing the valid names."""
    if name not in _REGISTRY:
        raise ValueError(f"Unknown model {name!r}. Valid models: {', '.join(model_names())}.")
    return _REGISTRY[name]


def build_model(spec: ModelSpec, arguments: Mapping, options: Mapping) -> keras.Model:
    """Builds `spec` from the task's `arguments` plus the user's `options` (flag -> value).

    Options left as None are not passed (the builder's default applies); an option
    the builder does not take raises ValueError naming the flag and the model.
    """
    parameters = inspect.signature(spec.builder).parameters
    chosen = {name: value for name, value in options.items() if value is not None}
    for name in chosen:
        if name not in parameters:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} does not apply to model {spec.name!r}.")
    return spec.builder(**arguments, **chosen)
