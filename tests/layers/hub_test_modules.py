"""Writes tiny TF2 "Reusable SavedModels", shaped like TF Hub modules, for the HubLayer tests.

Each writer builds a module with plain TensorFlow (no Keras), saves it with
`tf.saved_model.save` and returns the folder. The modules follow the TF Hub
conventions: a `@tf.function` `__call__` (with a `training` argument where the
module behaves differently in training), and `variables`, `trainable_variables`
and `regularization_losses` attributes.
"""

import numpy as np
import tensorflow as tf

IMAGE_SIZE = 8
IMAGE_FEATURES = 5
TEXT_DIM = 6
SEQUENCE_LENGTH = 4
VOCABULARY_SIZE = 16
REGULARIZATION = 1e-2
DROPOUT_RATE = 0.5


def _variable(rng, shape, name, trainable=True, value=None):
    initial = rng.normal(0.0, 0.3, shape) if value is None else np.full(shape, value)
    return tf.Variable(initial.astype("float32"), name=name, trainable=trainable)


def _save(path, call, call_specs, variables, trainable_variables, losses=(), signatures=None):
    root = tf.train.Checkpoint()
    root.variables = list(variables)
    root.trainable_variables = list(trainable_variables)
    root.regularization_losses = list(losses)
    root.__call__ = call
    for args, kwargs in call_specs:
        call.get_concrete_function(*args, **kwargs)
    tf.saved_model.save(root, str(path), signatures=signatures)
    return str(path)


def write_image_module(path, seed: int = 0) -> str:
    """A conv -> batch norm -> relu -> mean pool -> dropout -> dense image module.

    `__call__(images, training=False)` takes float32 [None, 8, 8, 3] images and
    returns float32 [None, 5] features. In training, batch norm uses the batch
    statistics and updates its moving ones (non-trainable variables), and
    dropout is on. The conv kernel carries an L2 regularization loss.
    """
    rng = np.random.default_rng(seed)
    conv_kernel = _variable(rng, (3, 3, 3, 4), "conv2d/kernel")
    conv_bias = _variable(rng, (4,), "conv2d/bias", value=0.0)
    gamma = _variable(rng, (4,), "batch_norm/gamma", value=1.0)
    beta = _variable(rng, (4,), "batch_norm/beta", value=0.0)
    moving_mean = _variable(rng, (4,), "batch_norm/moving_mean", trainable=False, value=0.0)
    moving_variance = _variable(rng, (4,), "batch_norm/moving_variance", trainable=False, value=1.0)
    dense_kernel = _variable(rng, (4, IMAGE_FEATURES), "dense/kernel")
    dense_bias = _variable(rng, (IMAGE_FEATURES,), "dense/bias", value=0.0)
    trainable = [conv_kernel, conv_bias, gamma, beta, dense_kernel, dense_bias]

    @tf.function
    def call(images, training=False):
        features = tf.nn.conv2d(images, conv_kernel, 1, "SAME") + conv_bias
        if training:
            mean, variance = tf.nn.moments(features, axes=[0, 1, 2])
            moving_mean.assign(0.9 * moving_mean + 0.1 * mean)
            moving_variance.assign(0.9 * moving_variance + 0.1 * variance)
        else:
            mean, variance = moving_mean, moving_variance
        features = tf.nn.batch_normalization(features, mean, variance, beta, gamma, 1e-3)
        features = tf.reduce_mean(tf.nn.relu(features), axis=[1, 2])
        if training:
            features = tf.nn.dropout(features, rate=DROPOUT_RATE)
        return tf.matmul(features, dense_kernel) + dense_bias

    @tf.function(input_signature=[])
    def kernel_l2():
        return REGULARIZATION * tf.reduce_sum(tf.square(conv_kernel))

    spec = tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 3], tf.float32)
    specs = [((spec,), {"training": training}) for training in (False, True)]
    variables = trainable + [moving_mean, moving_variance]
    return _save(path, call, specs, variables, trainable, [kernel_l2])


def _embed_words(embeddings, text):
    words = tf.strings.split(text).to_tensor(default_value="", shape=[None, SEQUENCE_LENGTH])
    ids = tf.strings.to_hash_bucket_fast(words, VOCABULARY_SIZE)
    mask = tf.cast(tf.not_equal(words, ""), tf.float32)[..., tf.newaxis]
    sequence = tf.gather(embeddings, ids) * mask
    pooled = tf.reduce_sum(sequence, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
    return {"pooled_output": pooled, "sequence_output": sequence}


def write_text_module(path, seed: int = 1) -> str:
    """A hashed bag-of-words text module over string inputs, with no `training` argument.

    `__call__(text)` takes string [None] sentences and returns a dict:
    `pooled_output` float32 [None, 6] and `sequence_output` float32 [None, 4, 6]
    (the first four words). The `embed` signature takes `text` and returns
    `{"embedding": pooled}`.
    """
    rng = np.random.default_rng(seed)
    embeddings = _variable(rng, (VOCABULARY_SIZE, TEXT_DIM), "embeddings")
    spec = tf.TensorSpec([None], tf.string)

    @tf.function
    def call(text):
        return _embed_words(embeddings, text)

    @tf.function(input_signature=[spec])
    def embed(text):
        return {"embedding": _embed_words(embeddings, text)["pooled_output"]}

    signatures = {"embed": embed}
    return _save(path, call, [((spec,), {})], [embeddings], [embeddings], signatures=signatures)


def write_encoder_module(path, seed: int = 2) -> str:
    """A BERT-shaped encoder over a dict of int32 [None, 4] tensors.

    `__call__(inputs, training=False)` takes `{"input_word_ids", "input_mask",
    "input_type_ids"}` and returns `{"pooled_output": [None, 6], "sequence_output":
    [None, 4, 6]}`. `training` is accepted (as in BERT encoders on TF Hub) but
    changes nothing here.
    """
    rng = np.random.default_rng(seed)
    word_embeddings = _variable(rng, (VOCABULARY_SIZE, TEXT_DIM), "word_embeddings")
    type_embeddings = _variable(rng, (2, TEXT_DIM), "type_embeddings")
    pooler = _variable(rng, (TEXT_DIM, TEXT_DIM), "pooler/kernel")

    @tf.function
    def call(inputs, training=False):
        del training
        sequence = tf.gather(word_embeddings, inputs["input_word_ids"])
        sequence += tf.gather(type_embeddings, inputs["input_type_ids"])
        sequence *= tf.cast(inputs["input_mask"], tf.float32)[..., tf.newaxis]
        pooled = tf.tanh(tf.matmul(sequence[:, 0], pooler))
        return {"pooled_output": pooled, "sequence_output": sequence}

    names = ("input_word_ids", "input_mask", "input_type_ids")
    spec = {name: tf.TensorSpec([None, SEQUENCE_LENGTH], tf.int32) for name in names}
    specs = [((spec,), {"training": training}) for training in (False, True)]
    variables = [word_embeddings, type_embeddings, pooler]
    return _save(path, call, specs, variables, variables)


def encoder_inputs(batch_size: int = 3) -> dict:
    """A batch for the encoder module: int32 word ids, mask and type ids."""
    rng = np.random.default_rng(3)
    shape = (batch_size, SEQUENCE_LENGTH)
    mask = np.ones(shape, "int32")
    mask[:, -1] = 0
    return {
        "input_word_ids": rng.integers(0, VOCABULARY_SIZE, shape).astype("int32"),
        "input_mask": mask,
        "input_type_ids": np.zeros(shape, "int32"),
    }
