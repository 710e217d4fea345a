"""Task logic shared by every model of a task: data shaping, loss, evaluation, export."""

from types import ModuleType

from tasks import captioning, classification, retrieval, vqa

_TASKS: dict[str, ModuleType] = {
    module.NAME: module for module in (captioning, retrieval, classification, vqa)
}


def get_task(name: str) -> ModuleType:
    """Returns the task module for `name` (each exposes the same functions)."""
    if name not in _TASKS:
        raise ValueError(f"Task {name!r} is not implemented yet; implemented: {sorted(_TASKS)}.")
    return _TASKS[name]
