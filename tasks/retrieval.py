"""Image-text retrieval: contrastive training, Recall@K evaluation, embedding export."""

import keras
import numpy as np
import tensorflow as tf

from datasets.decode_errors import DecodeErrorLog
from datasets.examples import CaptionExamples
from datasets.pipeline import image_dataset
from datasets.tokenizers import TextVocabulary
from evaluation.retrieval import chance_recalls, retrieval_recalls, retrieval_recalls_from_scores
from layers.projected_input_lstm import batch_halves_while_tracing
from serving.guards import (
    images_from_bytes,
    on_nonempty_batch,
    same_batch_size,
    texts_from_strings,
)
from tasks import captioning
from tasks.evaluation_result import EvaluationResult
from tasks.options import (
    EVALUATION_BATCH_SIZE,
    TaskOptions,
    text_inputs,
    training_pairs_dataset,
)
from training import compiling

NAME = "retrieval"

build_vocabulary = captioning.build_vocabulary


def model_arguments(vocabulary: TextVocabulary, options: TaskOptions, train=None) -> dict:
    """The builder's arguments (the training split adds nothing here)."""
    return captioning.text_model_arguments(vocabulary, options)


def make_dataset(
    examples: CaptionExamples,
    vocabulary: TextVocabulary,
    options: TaskOptions,
    training: bool,
    decode_errors: DecodeErrorLog | None = None,
) -> tf.data.Dataset:
    """(image, caption) pairs -> ({"image", "tokens"}, dummy target): targets are the diagonal."""

    def to_pairs(batch):
        inputs = {"image": batch["image"], **text_inputs(batch["text"], vocabulary, options)}
        return inputs, tf.zeros(tf.shape(batch["text"])[:1], tf.int32)

    paths, texts, _ = examples.pairs()
    if not training:
        # Captions of one image are adjacent; spread them so a batch holds few duplicates
        # (each duplicate is a false negative for the in-batch loss).
        order = np.random.default_rng(options.seed).permutation(len(paths))
        paths, texts = [paths[i] for i in order], [texts[i] for i in order]
    return training_pairs_dataset(
        paths,
        texts,
        options,
        to_pairs,
        training,
        images=examples.images,
        decode_errors=decode_errors,
    )


def compile_model(model: keras.Model, learning_rate: float, options: TaskOptions) -> None:
    compiling.compile_retriever(model, learning_rate, options.loss)


class RetrievalEncoders(tf.Module):
    """The two towers behind the retrieval signatures, also used for evaluation.

    Args:
        model: a retrieval model nesting "image_encoder" and "text_encoder".
        vocabulary: the vocabulary the model was trained with.
        options: image size and text length.
    """

    def __init__(self, model: keras.Model, vocabulary: TextVocabulary, options: TaskOptions):
        super().__init__(name="retrieval_encoders")
        self.image_encoder = model.get_layer("image_encoder")
        self.text_encoder = model.get_layer("text_encoder")
        self.vocabulary = vocabulary
        self.image_size = options.image_size
        self.sequence_length = options.sequence_length
        self.options = options

    @tf.function(reduce_retracing=True)
    def embed_images(self, images: tf.Tensor) -> tf.Tensor:
        return tf.cast(self.image_encoder(images, training=False), tf.float32)

    @tf.function(reduce_retracing=True)
    def embed_texts(self, texts: tf.Tensor) -> tf.Tensor:
        """The text tower alone (`encode_text`, ranking every caption): nothing runs
        beside it, so a one-direction LSTM takes the two halves of the batch as two
        recurrences, one a core (`layers.lstm_sequence` has the figures)."""
        with batch_halves_while_tracing():
            return self.embed_texts_inline(texts)

    def embed_texts_inline(self, texts: tf.Tensor) -> tf.Tensor:
        """The text tower traced into the caller's graph, its batch whole: `score` runs
        it beside the image tower, where the two halves cost more than they save."""
        (text,) = text_inputs(texts, self.vocabulary, self.options).values()
        return tf.cast(self.text_encoder(text, training=False), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def encode_image(self, image_bytes):
        images = images_from_bytes(image_bytes, self.image_size)
        return on_nonempty_batch(lambda batch: {"embedding": self.embed_images(batch)}, images)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def encode_text(self, text):
        texts = texts_from_strings(text, "text", self.sequence_length)
        return on_nonempty_batch(lambda batch: {"embedding": self.embed_texts(batch)}, texts)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="image_bytes"),
            tf.TensorSpec([None], tf.string, name="text"),
        ]
    )
    def score(self, image_bytes, text):
        """The score of each image with the text at the same position."""
        image_bytes, text = same_batch_size(image_bytes, "image_bytes", text, "text")
        images = images_from_bytes(image_bytes, self.image_size)
        texts = texts_from_strings(text, "text", self.sequence_length)

        def scores(image_batch, text_batch):
            image_features = self.embed_images(image_batch)
            return {
                "score": self.aligned_scores(image_features, self.embed_texts_inline(text_batch))
            }

        return on_nonempty_batch(scores, images, texts)

    def aligned_scores(self, image_features: tf.Tensor, text_features: tf.Tensor) -> tf.Tensor:
        """Cosine similarity of L2-normalised embeddings, pair by pair."""
        return tf.reduce_sum(image_features * text_features, axis=-1)

    def signatures(self) -> dict:
        return {
            "serving_default": self.score,
            "encode_image": self.encode_image,
            "encode_text": self.encode_text,
        }


class PairScorer(RetrievalEncoders):
    """Retrieval for models that score each (image, text) pair jointly.

    The model nests "image_encoder" (image -> region features), "text_encoder"
    (tokens -> a vector) and a "pair_scorer" layer. Image features depend on the
    text they are compared with, so there are no standalone embeddings: the
    export has `serving_default` (score per pair) only.
    """

    # Largest attention tensor [images, texts, regions, attention] scored at once.
    CHUNK_ELEMENTS = 2**25

    def __init__(self, model: keras.Model, vocabulary: TextVocabulary, options: TaskOptions):
        super().__init__(model, vocabulary, options)
        self.pair_scorer = model.get_layer("pair_scorer")

    @tf.function(reduce_retracing=True)
    def score_all(self, image_features: tf.Tensor, text_features: tf.Tensor) -> tf.Tensor:
        return tf.cast(self.pair_scorer(image_features, text_features), tf.float32)

    def similarity(self, images: np.ndarray, texts: np.ndarray) -> np.ndarray:
        """Scores [N, M] of every image against every text, in image chunks."""
        per_image = texts.shape[0] * images.shape[1] * self.pair_scorer.attention_dim
        rows = max(1, self.CHUNK_ELEMENTS // per_image)
        texts = tf.constant(texts)
        return np.concatenate(
            [
                self.score_all(tf.constant(images[start : start + rows]), texts).numpy()
                for start in range(0, images.shape[0], rows)
            ]
        )

    def aligned_scores(self, image_features: tf.Tensor, text_features: tf.Tensor) -> tf.Tensor:
        scores = self.pair_scorer(image_features, text_features, aligned=True)
        return tf.cast(scores, tf.float32)

    def signatures(self) -> dict:
        return {"serving_default": self.score}


def embed_examples(encoders: RetrievalEncoders, examples: CaptionExamples, options: TaskOptions):
    """Returns (image features [N, ...], text features [M, D], image index of each text)."""
    images = np.concatenate(
        [
            encoders.embed_images(batch).numpy()
            for batch in image_dataset(
                examples.image_paths,
                image_size=options.image_size,
                batch_size=EVALUATION_BATCH_SIZE,
                images=examples.images,
            )
        ]
    )
    _, texts, text_image_index = examples.pairs()
    text_batches = tf.data.Dataset.from_tensor_slices(texts).batch(EVALUATION_BATCH_SIZE)
    embedded_texts = np.concatenate([encoders.embed_texts(batch).numpy() for batch in text_batches])
    return images, embedded_texts, np.asarray(text_image_index)


def retrieval_module(model: keras.Model, vocabulary: TextVocabulary, options: TaskOptions):
    """Towers for dual encoders; a pair scorer for models with a "pair_scorer" layer."""
    has_scorer = any(layer.name == "pair_scorer" for layer in model.layers)
    module = PairScorer if has_scorer else RetrievalEncoders
    return module(model, vocabulary, options)


def evaluate(
    model: keras.Model,
    examples: CaptionExamples,
    vocabulary: TextVocabulary,
    train: CaptionExamples,
    options: TaskOptions,
) -> EvaluationResult:
    """Recall@1/5/10, text->image and image->text, over the whole split."""
    encoders = retrieval_module(model, vocabulary, options)
    images, texts, text_image_index = embed_examples(encoders, examples, options)
    if isinstance(encoders, PairScorer):
        scores = encoders.similarity(images, texts)
        metrics = retrieval_recalls_from_scores(scores, text_image_index)
        best = np.argmax(scores[:, :3], axis=0)
    else:
        metrics = retrieval_recalls(images, texts, text_image_index)
        best = np.argmax(texts[:3] @ images.T, axis=1)
    baseline = chance_recalls(len(examples), text_image_index)
    _, captions, _ = examples.pairs()
    samples = [
        {
            "text": captions[i],
            "retrieved": examples.image_paths[best[i]],
            "expected": examples.image_paths[text_image_index[i]],
        }
        for i in range(min(3, len(captions)))
    ]
    return EvaluationResult(metrics, baseline, "chance (random ranking)", samples)


serving_module = retrieval_module
