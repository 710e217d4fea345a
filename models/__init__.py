"""Model builders; importing this package registers every model by name."""

from models import (  # noqa: F401  (importing registers the builders)
    dual_encoder,
    image_text_alignment,
    pair_classifier,
    retrieval_attention,
    show_and_tell,
    show_attend_tell,
)
from models.registry import (
    ModelSpec,
    build_model,
    get_model_spec,
    model_names,
    register_model,
)

__all__ = ["ModelSpec", "build_model", "get_model_spec", "model_names", "register_model"]
