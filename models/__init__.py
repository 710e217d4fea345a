"""Model builders; importing this package registers every model by name."""

from models import dual_encoder, show_and_tell  # noqa: F401  (registers the builders)
from models.registry import ModelSpec, get_model_spec, model_names, register_model

__all__ = ["ModelSpec", "get_model_spec", "model_names", "register_model"]
