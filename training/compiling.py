"""How each task compiles a model: optimizer, loss and metrics.

Keras alone, no TensorFlow: the task modules (tasks/) delegate here, and so does a
KERAS_BACKEND=jax run on a machine without TensorFlow (benchmarks/jax_speed.py, the
JAX backend test), which then trains with the very settings train.py uses.
"""

from collections.abc import Callable

import keras

from models.losses import RETRIEVAL_LOSSES
from training import fused_adam


def compile_captioner(model: keras.Model, learning_rate: float, loss: str | None = None) -> None:
    model.compile(
        optimizer=fused_adam.adam(learning_rate, clipnorm=5.0),
        # Mean over real tokens: padding must not dilute the loss or the step size.
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"
        ),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="token_accuracy")],
    )


def compile_label_predictor(
    model: keras.Model, learning_rate: float, loss: str | None = None
) -> None:
    model.compile(
        optimizer=fused_adam.adam(learning_rate, clipnorm=5.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        weighted_metrics=[],
    )


def compile_retriever(model: keras.Model, learning_rate: float, loss: str = "infonce") -> None:
    """`loss`: a RETRIEVAL_LOSSES name."""
    if loss not in RETRIEVAL_LOSSES:
        raise ValueError(
            f"Unknown retrieval loss {loss!r}; expected one of {sorted(RETRIEVAL_LOSSES)}."
        )
    model.compile(optimizer=fused_adam.adam(learning_rate), loss=RETRIEVAL_LOSSES[loss]())


COMPILERS: dict[str, Callable[..., None]] = {
    "captioning": compile_captioner,
    "classification": compile_label_predictor,
    "vqa": compile_label_predictor,
    "retrieval": compile_retriever,
}


def compile_for_task(
    task_name: str, model: keras.Model, learning_rate: float, loss: str | None = None
) -> None:
    """Compiles `model` as task `task_name` trains it; `loss` picks a retrieval loss."""
    if task_name not in COMPILERS:
        raise ValueError(f"No compile settings for task {task_name!r}; known: {sorted(COMPILERS)}.")
    if loss is None:
        COMPILERS[task_name](model, learning_rate)
    else:
        COMPILERS[task_name](model, learning_rate, loss)
