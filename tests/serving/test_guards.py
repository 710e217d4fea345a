"""The checks every serving signature runs before its model."""

import tensorflow as tf

from serving.guards import on_nonempty_batch


def test_an_empty_batch_never_reaches_the_model_and_gets_empty_outputs():
    def model(images, texts):
        with tf.control_dependencies([tf.debugging.assert_positive(tf.shape(images)[0])]):
            return {"score": tf.reduce_mean(images, axis=[1, 2, 3]), "text": texts}

    @tf.function(input_signature=[tf.TensorSpec([None, 4, 4, 3]), tf.TensorSpec([None], tf.string)])
    def serve(images, texts):
        return on_nonempty_batch(model, images, texts)

    empty = serve(tf.zeros([0, 4, 4, 3]), tf.constant([], tf.string))
    assert empty["score"].shape == (0,) and empty["text"].shape == (0,)
    full = serve(tf.ones([2, 4, 4, 3]), tf.constant(["a", "b"]))
    assert full["score"].numpy().tolist() == [1.0, 1.0]
    assert full["text"].numpy().tolist() == [b"a", b"b"]
