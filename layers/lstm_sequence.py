"""The LSTM over a whole sequence, input projection included, with a hand-written
backward pass.

Autodiff of a step-by-step LSTM makes, per step, two backward matmuls (one of them
with a transposed [U, 4U] operand, which oneDNN runs at half speed) and, with a
mask, a select for every output and state. Here the backward pass computes the
gates' gradients step by step, multiplies only by the recurrent kernel inside the
loop, and forms the kernels' gradients as [., B*t] x [B*t, 4U] matmuls over chunks of
t = CHUNK_STEPS steps, as cuDNN and PyTorch's CPU LSTM form them over all steps.

The recurrence runs feature-major: the states are [U, B] and each step's gates
[4U, B], so the four gates are consecutive blocks of memory. Cutting them apart is
then free (a split along the first axis shares the buffer), where the batch-major
[B, 4U] split copied every step (3.6 ms of show_and_tell's step), and joining the
backward step's four gate gradients is one contiguous copy. The layout changes
once on the way in and once on the way out.

Inference runs batch-major instead, with no backward pass of its own: with the few
rows of caption decoding and serving, the [4U, U] x [U, B] matmuls and the layout
changes cost more than the splits they save (33 steps at B = 3: 7.7 ms feature-major,
4.0 ms batch-major; at B = 64 the two are within 7%).

With `batch_halves`, the two halves of a batch of two rows or more run as two
independent recurrences (an LSTM's rows never interact), so that one half's
element-wise ops run beside the other's matmul on a second core. That pays where
the LSTM has the machine to itself and costs where another tower already runs
beside it (twice the ops, each half the size). Measured on 2 cores (2026-12-03):
- at B = 64, 32 steps, 128 -> 256 the LSTM's training pass took 26.9 instead of
  37.7 ms; show_and_tell trained 12 to 13% faster and text_only 32%;
- dual_encoder and vqa, whose text LSTM runs beside the image encoder, trained 4 and
  6% slower, and dual_encoder's inference at B = 32 took 11.1 instead of 9.7 ms;
- dual_encoder's text tower alone at B = 32 (its `encode_text`): 6.2 instead of
  9.1 ms.
Below two rows it runs whole (with an unknown batch, a `cond` picks), so that no
recurrence ever runs on zero rows.

Masks never enter the loop: the caller moves each row's real steps to the front
first (`compaction_order`), which leaves the usual right-padded rows as they are.
"""

import keras
from keras import ops

# The backward pass forms the kernels' gradients of every CHUNK_STEPS steps as soon as
# their gate gradients are known, while the recurrence goes on with the earlier steps:
# the step-by-step recurrence keeps about one core busy, these matmuls take the other.
# In show_and_tell (33 steps) this took 1.5 to 2 ms off a step of 85 to 90 ms.
CHUNK_STEPS = 8


def lstm_sequence(
    sequences, kernel, bias, h0, c0, recurrent_kernel, training=True, batch_halves=False
):
    """Runs `z_t = x_t @ kernel + bias + h_{t-1} @ recurrent_kernel` with Keras' gates
    (i, f, c, o; sigmoid and tanh) over every step.

    Args:
        sequences: [B, T, E]; T must be static.
        kernel: [E, 4U]; bias: [4U].
        h0, c0: [B, U], the initial states.
        recurrent_kernel: [U, 4U].
        training: True: feature-major, with the hand-written backward pass; False:
            batch-major, for inference (autodiff still differentiates it, slowly).
        batch_halves: run the two halves of the batch as two independent recurrences,
            for an LSTM that nothing else runs beside (see the module's docstring).

    Returns:
        (H, C): [B, T, U] each, the hidden and cell state after every step.
    """
    recurrence = _lstm_sequence if training else _batch_major_recurrence

    def whole():
        return recurrence(sequences, kernel, bias, h0, c0, recurrent_kernel)

    def halves():
        parts = [
            recurrence(x, kernel, bias, h, c, recurrent_kernel)
            for x, h, c in zip(*map(_two_halves, (sequences, h0, c0)), strict=True)
        ]
        return tuple(ops.concatenate(pair, axis=0) for pair in zip(*parts, strict=True))

    rows = sequences.shape[0]
    if not batch_halves or (rows is not None and rows < 2):
        return whole()
    if rows is not None:
        return halves()
    return ops.cond(ops.shape(sequences)[0] >= 2, halves, whole)


def _two_halves(tensor):
    """The first and second half of the batch: a split where the batch is static (its
    gradient, under a tape in inference mode, is a concatenation, where a strided
    slice's is the slow StridedSliceGrad)."""
    rows = tensor.shape[0]
    if rows is None:
        half = ops.shape(tensor)[0] // 2
        return tensor[:half], tensor[half:]
    return tuple(ops.split(tensor, [rows // 2], axis=0))


def _batch_major_recurrence(sequences, kernel, bias, h0, c0, recurrent_kernel):
    # Projected time-major, [T, B, 4U], so that each step is a contiguous slice: from
    # [B, T, 4U] the unstack copied every step's rows one by one (1.9 ms a call in a
    # profile of the text tower at B = 32, 2026-12-02).
    projected = ops.matmul(ops.transpose(sequences, (1, 0, 2)), kernel) + bias
    h, c = h0, c0
    hs, cs = [], []
    for z_input in ops.unstack(projected, num=sequences.shape[1], axis=0):
        z = z_input + ops.matmul(h, recurrent_kernel)
        z_i, z_f, z_g, z_o = ops.split(z, 4, axis=-1)
        c = ops.sigmoid(z_f) * c + ops.sigmoid(z_i) * ops.tanh(z_g)
        h = ops.sigmoid(z_o) * ops.tanh(c)
        hs.append(h)
        cs.append(c)
    return ops.stack(hs, axis=1), ops.stack(cs, axis=1)


@ops.custom_gradient
def _lstm_sequence(sequences, kernel, bias, h0, c0, recurrent_kernel):
    steps, features = sequences.shape[1], sequences.shape[2]
    units = recurrent_kernel.shape[0]
    kernel_transposed = _materialized_transpose(kernel)  # [4U, E]
    recurrent_transposed = _materialized_transpose(recurrent_kernel)  # [4U, U]
    # [4U, E] x [T, E, B] -> [T, 4U, B]: every step's input gates, feature-major.
    projected = ops.matmul(kernel_transposed, ops.transpose(sequences, (1, 2, 0)))
    projected = projected + ops.reshape(bias, (4 * units, 1))
    h0_steps = _materialized_transpose(h0)  # [U, B]
    h, c = h0_steps, ops.transpose(c0)
    saved, hs, cs = [], [], []
    for z_input in ops.unstack(projected, num=steps, axis=0):
        z = z_input + ops.matmul(recurrent_transposed, h)
        z_i, z_f, z_g, z_o = ops.split(z, 4, axis=0)
        i, f, o = ops.sigmoid(z_i), ops.sigmoid(z_f), ops.sigmoid(z_o)
        g = ops.tanh(z_g)
        c_previous = c
        c = f * c_previous + i * g
        tanh_c = ops.tanh(c)
        h = o * tanh_c
        saved.append((i, f, g, o, c_previous, tanh_c))
        hs.append(h)
        cs.append(c)
    hidden_steps = ops.stack(hs, axis=0)  # [T, U, B]
    hidden = ops.transpose(hidden_steps, (2, 0, 1))
    cells = ops.transpose(ops.stack(cs, axis=0), (2, 0, 1))

    def backward(*upstream, **unused):
        # TensorFlow passes one gradient per output; JAX one tuple of them.
        if len(upstream) == 1 and isinstance(upstream[0], (tuple, list)):
            upstream = tuple(upstream[0])
        d_hidden_steps, d_cell_steps = (
            [None] * steps
            if grad is None
            else ops.unstack(ops.transpose(grad, (1, 2, 0)), num=steps, axis=0)
            for grad in upstream
        )
        previous_hidden = ops.concatenate([ops.expand_dims(h0_steps, 0), hidden_steps[:-1]], 0)
        chunks = _chunks(steps)
        starts = [start for start, _ in chunks[1:]]
        # Per chunk of steps, time-major rows [chunk steps, B, .] of what multiplied the kernels.
        previous_rows = _split_steps(ops.transpose(previous_hidden, (0, 2, 1)), starts)
        input_rows = _split_steps(ops.transpose(sequences, (1, 0, 2)), starts)
        dh_next = ops.zeros_like(h)
        dc_next = ops.zeros_like(c)
        dz_steps = [None] * steps
        d_recurrent = d_kernel = d_bias = 0.0
        d_input_chunks = [None] * len(chunks)
        for chunk in reversed(range(len(chunks))):
            start, stop = chunks[chunk]
            for t in reversed(range(start, stop)):
                i, f, g, o, c_previous, tanh_c = saved[t]
                dh = dh_next if d_hidden_steps[t] is None else d_hidden_steps[t] + dh_next
                dc = dc_next + _tanh_grad(tanh_c, dh * o)
                if d_cell_steps[t] is not None:
                    dc = dc + d_cell_steps[t]
                dz = ops.concatenate(
                    [
                        _sigmoid_grad(i, dc * g),
                        _sigmoid_grad(f, dc * c_previous),
                        _tanh_grad(g, dc * i),
                        _sigmoid_grad(o, dh * tanh_c),
                    ],
                    axis=0,
                )
                dz_steps[t] = dz
                dc_next = dc * f
                dh_next = ops.matmul(recurrent_kernel, dz)
            # The chunk's share of the kernels' gradients: independent of the steps
            # still to come, so it runs beside them.
            # [steps, 4U, B] -> [steps * B, 4U]: one row per (step, example), time-major.
            d_projected = ops.reshape(
                ops.transpose(ops.stack(dz_steps[start:stop], axis=0), (0, 2, 1)), (-1, 4 * units)
            )
            d_recurrent += ops.matmul(
                ops.transpose(ops.reshape(previous_rows[chunk], (-1, units))), d_projected
            )
            d_kernel += ops.matmul(
                ops.transpose(ops.reshape(input_rows[chunk], (-1, features))), d_projected
            )
            d_bias += ops.sum(d_projected, axis=0)
            d_input_rows = ops.matmul(d_projected, kernel_transposed)  # [steps * B, E]
            d_input_chunks[chunk] = ops.reshape(d_input_rows, (stop - start, -1, features))
        d_sequences = ops.transpose(ops.concatenate(d_input_chunks, axis=0), (1, 0, 2))
        return (
            d_sequences,
            d_kernel,
            d_bias,
            ops.transpose(dh_next),
            ops.transpose(dc_next),
            d_recurrent,
        )

    return (hidden, cells), backward


def _sigmoid_grad(y, dy):
    """dy * y * (1 - y), the gradient through y = sigmoid(z). In TensorFlow one kernel
    (`SigmoidGrad`) instead of three: a backward step's element-wise ops on [4U, B]
    tensors cost more to dispatch than to compute."""
    if keras.config.backend() != "tensorflow":
        return dy * y * (1.0 - y)
    import tensorflow as tf

    return tf.raw_ops.SigmoidGrad(y=y, dy=dy)


def _tanh_grad(y, dy):
    """dy * (1 - y * y), the gradient through y = tanh(z); in TensorFlow one kernel
    (`TanhGrad`), where the optimizer made `y * y` a Square that took 40 µs a step."""
    if keras.config.backend() != "tensorflow":
        return dy * (1.0 - y * y)
    import tensorflow as tf

    return tf.raw_ops.TanhGrad(y=y, dy=dy)


def _chunks(steps: int) -> list[tuple[int, int]]:
    """[(start, stop)] of CHUNK_STEPS steps each (the last shorter), in time order."""
    return [(start, min(start + CHUNK_STEPS, steps)) for start in range(0, steps, CHUNK_STEPS)]


def _split_steps(time_major, starts: list[int]) -> list:
    """`time_major` [T, ...] cut before each of `starts`."""
    return ops.split(time_major, starts, axis=0) if starts else [time_major]


def _materialized_transpose(matrix):
    """The transpose of a 2-D tensor as its own tensor. TensorFlow's graph optimizer
    would otherwise fold a Transpose into the MatMul that reads it (`transpose_a/b`);
    oneDNN ran the backward steps' `transpose_b` MatMuls at about half speed (16 steps:
    10 ms, not 5). A Snapshot between them keeps the fold from matching."""
    transposed = ops.transpose(matrix)
    if keras.config.backend() != "tensorflow":
        return transposed
    import tensorflow as tf

    return tf.raw_ops.Snapshot(input=transposed)


def compaction_order(mask):
    """For a bool mask [B, T]: (order [B, T], counts [B, T]), where gathering a row's steps
    at `order` puts its real steps first, in time order, then its masked ones, and
    `counts[b, t]` is how many real steps row b has up to and including t. For a
    right-padded row `order` is 0, 1, ..., T - 1."""
    as_int = ops.cast(mask, "int32")
    counts = ops.cumsum(as_int, axis=1)
    total = counts[:, -1:]
    positions = ops.expand_dims(ops.arange(mask.shape[1], dtype="int32"), 0)
    destination = ops.where(mask, counts - 1, total + positions - counts)
    return ops.argsort(destination, axis=1), counts


def select_steps(indices, sequences, keep=None):
    """`sequences[b, indices[b, j]]` for each row b and position j ([B, J, D] from
    [B, J] int indices and [B, T, D]), zeros where `indices` is out of range or `keep`
    [B, J] is False. A one-hot batched matmul rather than a gather: for short T it is
    cheap, and its gradient is another matmul, where a gather's is a slow scatter."""
    selection = ops.one_hot(indices, sequences.shape[1], dtype=sequences.dtype)
    if keep is not None:
        selection = selection * ops.expand_dims(ops.cast(keep, sequences.dtype), -1)
    return ops.matmul(selection, sequences)
