"""Model builders; importing this package registers every model by name."""

from models import dual_encoder, pair_classifier, show_and_tell  # noqa: F401  (registers the builders)
from models import show_attend_tell  # noqa: F401  (registers the builder)
from models.registry import (
    ModelSpec,
    build_model,
    get_model_spec,
    model_names,
    register_model,
)

__all__ = ["ModelSpec", "build_model", "get_model_spec", "model_names", "register_model"]
