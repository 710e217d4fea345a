"""The LSTM recurrence over a whole sequence, with a hand-written backward pass.

Autodiff of a step-by-step LSTM makes, per step, two backward matmuls (one of them
with a transposed [U, 4U] operand, which oneDNN runs at half speed) and, with a
mask, a select for every output and state. Here the backward pass computes the
gates' gradients step by step, multiplies only by the pre-transposed recurrent
kernel inside the loop, and forms the recurrent kernel's gradient once, as one
[U, B*T] x [B*T, 4U] matmul after it, as cuDNN and PyTorch's CPU LSTM do. Masks
never enter the loop: the caller moves each row's real steps to the front first
(`compaction_order`), which leaves the usual right-padded rows as they are.
"""

import keras
from keras import ops


def lstm_sequence(projected, h0, c0, recurrent_kernel):
    """Runs `z_t = projected_t + h_{t-1} @ recurrent_kernel` with Keras' gates (i, f, c, o;
    sigmoid and tanh) over every step.

    Args:
        projected: [B, T, 4U], each step's `x_t @ kernel + bias`; T must be static.
        h0, c0: [B, U], the initial states.
        recurrent_kernel: [U, 4U].

    Returns:
        (H, C): [B, T, U] each, the hidden and cell state after every step.
    """
    return _lstm_sequence(projected, h0, c0, recurrent_kernel)


@ops.custom_gradient
def _lstm_sequence(projected, h0, c0, recurrent_kernel):
    steps = projected.shape[1]
    recurrent_transposed = _materialized_transpose(recurrent_kernel)  # [4U, U], for the backward
    inputs = ops.unstack(projected, num=steps, axis=1)
    h, c = h0, c0
    saved, hs, cs = [], [], []
    for z_input in inputs:
        z = z_input + ops.matmul(h, recurrent_kernel)
        z_i, z_f, z_g, z_o = ops.split(z, 4, axis=-1)
        i, f, o = ops.sigmoid(z_i), ops.sigmoid(z_f), ops.sigmoid(z_o)
        g = ops.tanh(z_g)
        c_previous = c
        c = f * c_previous + i * g
        tanh_c = ops.tanh(c)
        h = o * tanh_c
        saved.append((i, f, g, o, c_previous, tanh_c))
        hs.append(h)
        cs.append(c)
    hidden = ops.stack(hs, axis=1)
    cells = ops.stack(cs, axis=1)

    def backward(*upstream, **unused):
        # TensorFlow passes one gradient per output; JAX one tuple of them.
        if len(upstream) == 1 and isinstance(upstream[0], (tuple, list)):
            upstream = tuple(upstream[0])
        d_hidden, d_cells = (
            ops.zeros_like(value) if grad is None else grad
            for grad, value in zip(upstream, (hidden, cells), strict=True)
        )
        d_hidden_steps = ops.unstack(d_hidden, num=steps, axis=1)
        d_cell_steps = ops.unstack(d_cells, num=steps, axis=1)
        dh_next = ops.zeros_like(h0)
        dc_next = ops.zeros_like(c0)
        dz_steps = [None] * steps
        for t in reversed(range(steps)):
            i, f, g, o, c_previous, tanh_c = saved[t]
            dh = d_hidden_steps[t] + dh_next
            dc = d_cell_steps[t] + dc_next + dh * o * (1.0 - tanh_c * tanh_c)
            dz = ops.concatenate(
                [
                    dc * g * i * (1.0 - i),
                    dc * c_previous * f * (1.0 - f),
                    dc * i * (1.0 - g * g),
                    dh * tanh_c * o * (1.0 - o),
                ],
                axis=-1,
            )
            dz_steps[t] = dz
            dc_next = dc * f
            dh_next = ops.matmul(dz, recurrent_transposed)
        d_projected = ops.stack(dz_steps, axis=1)
        previous_hidden = ops.concatenate([ops.expand_dims(h0, 1), hidden[:, :-1]], axis=1)
        units = recurrent_kernel.shape[0]
        d_recurrent = ops.matmul(
            ops.transpose(ops.reshape(previous_hidden, (-1, units))),
            ops.reshape(d_projected, (-1, 4 * units)),
        )
        return d_projected, dh_next, dc_next, d_recurrent

    return (hidden, cells), backward


def _materialized_transpose(matrix):
    """The transpose as its own tensor. TensorFlow's graph optimizer would otherwise fold a
    Transpose into the MatMul that reads it (`transpose_b=True`), which oneDNN runs at
    about half speed: 16 backward steps took 10 ms instead of 5. A Snapshot between them
    keeps the fold from matching."""
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
