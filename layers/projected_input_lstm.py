"""An LSTM that projects its inputs once and runs its own recurrence and backward pass."""

import contextlib
import threading

import keras
from keras import layers, ops

from layers.lstm_sequence import compaction_order, lstm_sequence, select_steps
from layers.time_slices import last_step, only_step

_TRACING = threading.local()


@contextlib.contextmanager
def batch_halves_while_tracing():
    """Every ProjectedInputLSTM traced inside, unless built with `batch_halves=False`,
    runs the two halves of its batch as two recurrences: for a graph that runs a tower
    alone, such as a retrieval export's `encode_text`, where the same tower beside an
    image tower (`serving_default`) runs its batch whole.

    It acts while a function is traced, so it must sit inside the traced function
    (or around the first call of a new one): a `tf.function` or `jax.jit` traced before
    keeps the graph it has.
    """
    previous = getattr(_TRACING, "batch_halves", False)
    _TRACING.batch_halves = True
    try:
        yield
    finally:
        _TRACING.batch_halves = previous


@keras.saving.register_keras_serializable(package="mmzoo")
class ProjectedInputLSTM(layers.LSTM):
    """`keras.layers.LSTM`, computed the way cuDNN and PyTorch's CPU LSTM compute it.

    Keras' own loop multiplies each step's input by the kernel inside the time loop,
    lets autodiff differentiate every step (two backward matmuls per step, one with a
    transposed operand that oneDNN runs at half speed) and, with a mask, selects every
    output and state at every step. This layer instead:
    - projects the whole sequence, `x @ kernel + bias`, in one matmul;
    - runs the recurrence in `layers.lstm_sequence`: in training feature-major, with a
      hand-written backward pass that forms the kernels' gradients a few steps at a
      time in large matmuls; in inference batch-major;
    - keeps masks out of the loop: each row's real steps are moved to the front first
      (right-padded rows stay as they are), and the masked outputs and final states
      are picked afterwards, as Keras defines them (a masked step repeats the last
      real output; `zero_output_for_mask` gives zeros).

    Everything else is `layers.LSTM`'s: the same weights under the same names (a saved
    LSTM's weights load into it), the same gates (i, f, c, o), `go_backwards`, `unroll`
    (the loop is always unrolled; T must be static), input dropout (one mask for every
    step, as the cell applies it) and configuration. It falls back to Keras' loop for
    what it does not cover: recurrent dropout, `implementation=1`, other activations,
    an unknown sequence length, and TensorFlow with a GPU, where `layers.LSTM` may pick
    cuDNN.

    Args:
        units: as `layers.LSTM`'s, and its other arguments.
        batch_halves: True: run the two halves of the batch as two independent
            recurrences, one a core, which pays where nothing else runs beside the
            LSTM and costs where another tower does (`layers.lstm_sequence` has the
            figures); False: never; None: only inside `batch_halves_while_tracing`.

    Example:
        >>> lstm = ProjectedInputLSTM(8, return_sequences=True)
        >>> lstm(keras.ops.ones((2, 5, 3))).shape
        (2, 5, 8)
    """

    def __init__(self, units, *, batch_halves: bool | None = None, **kwargs):
        super().__init__(units, **kwargs)
        self.batch_halves = batch_halves

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        if not self._runs_its_own_loop(sequences):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if training and 0.0 < cell.dropout < 1.0:
            step_mask = cell.get_dropout_mask(sequences[:, 0, :])
            sequences = sequences * ops.expand_dims(step_mask, 1)
        if self.go_backwards:
            sequences = ops.flip(sequences, axis=1)
            mask = None if mask is None else ops.flip(mask, axis=1)
        h0, c0 = initial_state
        if mask is not None:
            mask = ops.cast(mask, "bool")
            order, counts = compaction_order(mask)
            sequences = select_steps(order, sequences)
        # Tensors, not the variables: the custom gradient is for its arguments only.
        dtype = sequences.dtype
        kernel = ops.copy(ops.cast(cell.kernel, dtype))
        recurrent_kernel = ops.copy(ops.cast(cell.recurrent_kernel, dtype))
        if cell.use_bias:
            bias = ops.copy(ops.cast(cell.bias, dtype))
        else:
            bias = ops.zeros((4 * cell.units,), dtype)
        hidden, cells = lstm_sequence(
            sequences,
            kernel,
            bias,
            h0,
            c0,
            recurrent_kernel,
            training=bool(training),
            batch_halves=self._runs_batch_halves(),
        )
        if mask is None:
            last = last_step(hidden)
            return last, hidden, [last, last_step(cells)]
        return _masked_results(hidden, cells, h0, c0, mask, counts, self.zero_output_for_mask)

    def _runs_batch_halves(self) -> bool:
        if self.batch_halves is None:
            return getattr(_TRACING, "batch_halves", False)
        return self.batch_halves

    def get_config(self):
        # Left out when unset, so that a saved model still loads where the option is unknown.
        config = super().get_config()
        if self.batch_halves is not None:
            config["batch_halves"] = self.batch_halves
        return config

    def _runs_its_own_loop(self, sequences) -> bool:
        cell = self.cell
        return (
            not cell.recurrent_dropout
            and cell.implementation == 2
            and cell.activation is keras.activations.tanh
            and cell.recurrent_activation is keras.activations.sigmoid
            and sequences.shape[1] is not None
            and not _tensorflow_gpu_visible()
        )


def _masked_results(hidden, cells, h0, c0, mask, counts, zero_output_for_mask):
    """Keras' masked-RNN results from states computed over the compacted steps: a masked
    step repeats the last real output (zeros before any, or always zeros with
    zero_output_for_mask), and the final states are those after the last real step."""
    shown = mask if zero_output_for_mask else counts > 0
    outputs = select_steps(counts - 1, hidden, keep=shown)
    last = counts[:, -1:] - 1  # -1 where a row has no real step: selects zeros
    any_real = last >= 0
    h = ops.where(any_real, only_step(select_steps(last, hidden)), h0)
    c = ops.where(any_real, only_step(select_steps(last, cells)), c0)
    return last_step(outputs), outputs, [h, c]


def _tensorflow_gpu_visible() -> bool:
    if keras.config.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))
