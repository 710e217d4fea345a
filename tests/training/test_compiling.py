"""training/compiling.py: every task's compile settings, Keras only."""

import keras
import pytest

from models import get_model_spec, model_names
from training.compiling import COMPILERS, compile_for_task


def test_every_registered_model_has_its_task_compile_settings():
    assert {get_model_spec(name).task for name in model_names()} <= set(COMPILERS)


def test_an_unknown_task_or_retrieval_loss_is_named():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="task 'ocr'"):
        compile_for_task("ocr", model, 1e-3)
    with pytest.raises(ValueError, match="Unknown retrieval loss 'triplet'"):
        compile_for_task("retrieval", model, 1e-3, loss="triplet")
    compile_for_task("retrieval", model, 1e-3, loss="vsepp")
    assert type(model.loss).__name__ == "HardestNegativeHingeLoss"
