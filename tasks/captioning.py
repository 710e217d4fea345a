"""Captioning: teacher-forced training, BLEU/CIDEr-D evaluation, image_bytes -> caption export.

A model whose "caption_decoder" also returns "attention" [B, T, N] (weights over
N image regions at each step) exports a second signature, caption_with_attention:
image_bytes -> caption and the attention behind each of its words.
"""

import keras
import numpy as np
import tensorflow as tf

from datasets.decode_errors import DecodeErrorLog
from datasets.examples import CaptionExamples
from datasets.image_sources import FILES
from datasets.pipeline import image_dataset
from datasets.text import PAD_ID
from datasets.tokenizers import TextVocabulary, build_text_vocabulary
from evaluation.captioning import caption_metrics, captioning_baseline
from models.token_prior import log_frequencies
from serving.guards import images_from_bytes, on_nonempty_batch
from tasks.caption_decoding import beam_search_decode, caption_attention
from tasks.evaluation_result import EvaluationResult
from tasks.options import EVALUATION_BATCH_SIZE, TaskOptions, training_pairs_dataset
from training import compiling

NAME = "captioning"


def build_vocabulary(train: CaptionExamples, options: TaskOptions) -> TextVocabulary:
    return build_text_vocabulary(
        train.all_captions(), options.tokenizer, options.max_vocabulary_size
    )


def text_model_arguments(vocabulary: TextVocabulary, options: TaskOptions) -> dict:
    """What every model of token ids and images is built with."""
    return {
        "vocabulary_size": vocabulary.size,
        "sequence_length": options.sequence_length,
        "image_size": options.image_size,
    }


def model_arguments(
    vocabulary: TextVocabulary, options: TaskOptions, train: CaptionExamples | None = None
) -> dict:
    """The builder's arguments; with the training split, also the next-token layer's
    start at the log frequency of each token in its captions (models.token_prior)."""
    arguments = text_model_arguments(vocabulary, options)
    if train is not None:
        captions = tf.constant(train.all_captions())
        tokens = vocabulary.encode(captions, options.sequence_length, add_start_end=True)
        arguments["token_log_prior"] = log_frequencies(tokens.numpy()[:, 1:], vocabulary.size)
    return arguments


def make_dataset(
    examples: CaptionExamples,
    vocabulary: TextVocabulary,
    options: TaskOptions,
    training: bool,
    decode_errors: DecodeErrorLog | None = None,
) -> tf.data.Dataset:
    """(image, caption) pairs -> ({"image", "tokens"}, next tokens, weights that mask padding)."""

    def to_teacher_forcing(batch):
        tokens = vocabulary.encode(batch["text"], options.sequence_length, add_start_end=True)
        targets = tokens[:, 1:]
        weights = tf.cast(tf.not_equal(targets, PAD_ID), tf.float32)
        return {"image": batch["image"], "tokens": tokens[:, :-1]}, targets, weights

    paths, texts, _ = examples.pairs()
    return training_pairs_dataset(
        paths,
        texts,
        options,
        to_teacher_forcing,
        training,
        images=examples.images,
        decode_errors=decode_errors,
    )


def compile_model(model: keras.Model, learning_rate: float, options: TaskOptions) -> None:
    compiling.compile_captioner(model, learning_rate)


class CaptionGenerator(tf.Module):
    """Image -> caption, used both for evaluation and as the exported serving module.

    Args:
        model: a captioning model nesting "image_encoder" and "caption_decoder".
        vocabulary: the vocabulary the model was trained with.
        options: image size, sequence length and beam size.
    """

    def __init__(self, model: keras.Model, vocabulary: TextVocabulary, options: TaskOptions):
        super().__init__(name="caption_generator")
        self.image_encoder = model.get_layer("image_encoder")
        self.caption_decoder = model.get_layer("caption_decoder")
        self.vocabulary = vocabulary
        self.image_size = options.image_size
        self.steps = options.sequence_length - 1
        self.beam_size = options.beam_size

    def _decode(self, images: tf.Tensor) -> tuple[dict, tf.Tensor]:
        """float32 [B, S, S, 3] -> (image features, best-beam token ids int32 [B, steps])."""
        features = self.image_encoder(images, training=False)
        return features, beam_search_decode(
            self.caption_decoder, features, self.steps, self.beam_size
        )

    @tf.function(reduce_retracing=True)
    def generate(self, images: tf.Tensor) -> tf.Tensor:
        """float32 [B, S, S, 3] -> caption strings [B]."""
        _, ids = self._decode(images)
        return self.vocabulary.decode(ids)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(self, image_bytes: tf.Tensor) -> dict:
        images = images_from_bytes(image_bytes, self.image_size)
        return on_nonempty_batch(lambda batch: {"caption": self.generate(batch)}, images)

    def signatures(self) -> dict:
        return {"serving_default": self.serve}


class AttentionCaptionGenerator(CaptionGenerator):
    """A CaptionGenerator that can also return where the decoder looked for each word.

    For models whose "caption_decoder" returns a dict with "logits" and
    "attention" [B, T, N]. Its export adds the signature caption_with_attention:
    image_bytes string[None] -> caption string[None] and attention float32
    [None, T, N], where T = sequence_length - 1 and N is the number of image
    regions (a row-major grid for the CNN encoders). Row t holds the weights
    behind the caption's t-th word and sums to 1; the rows after the last word
    are zero. serving_default is the same as CaptionGenerator's.
    """

    @tf.function(reduce_retracing=True)
    def generate_with_attention(self, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """float32 [B, S, S, 3] -> (caption strings [B], attention float32 [B, T, N])."""
        features, ids = self._decode(images)
        attention = caption_attention(self.caption_decoder, features, ids)
        return self.vocabulary.decode(ids), attention

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_with_attention(self, image_bytes: tf.Tensor) -> dict:
        images = images_from_bytes(image_bytes, self.image_size)

        def captions_and_attention(batch):
            captions, attention = self.generate_with_attention(batch)
            return {"caption": captions, "attention": attention}

        return on_nonempty_batch(captions_and_attention, images)

    def signatures(self) -> dict:
        return {**super().signatures(), "caption_with_attention": self.serve_with_attention}


def returns_attention(model: keras.Model) -> bool:
    """Whether the model's "caption_decoder" returns attention weights beside its logits."""
    outputs = model.get_layer("caption_decoder").output
    return isinstance(outputs, dict) and "attention" in outputs


def generate_captions(
    generator: CaptionGenerator, image_paths: list[str], options: TaskOptions, images=FILES
) -> list[str]:
    captions = []
    for batch in image_dataset(
        image_paths,
        image_size=options.image_size,
        batch_size=EVALUATION_BATCH_SIZE,
        images=images,
    ):
        captions.extend(text.decode("utf-8") for text in generator.generate(batch).numpy())
    return captions


def evaluate(
    model: keras.Model,
    examples: CaptionExamples,
    vocabulary: TextVocabulary,
    train: CaptionExamples,
    options: TaskOptions,
) -> EvaluationResult:
    """BLEU-1..4 and CIDEr-D of generated captions against every reference caption."""
    generator = CaptionGenerator(model, vocabulary, options)
    predictions = generate_captions(generator, examples.image_paths, options, examples.images)
    references = dict(enumerate(examples.captions))
    metrics = caption_metrics(references, dict(enumerate(predictions)))
    baseline = captioning_baseline(train.all_captions(), references)
    picks = np.linspace(0, len(examples) - 1, num=min(3, len(examples)), dtype=int)
    samples = [
        {
            "image": examples.image_paths[i],
            "generated": predictions[i],
            "reference": examples.captions[i][0],
        }
        for i in picks
    ]
    return EvaluationResult(metrics, baseline, "most frequent training caption", samples)


def serving_module(model: keras.Model, vocabulary: TextVocabulary, options: TaskOptions):
    """The export: AttentionCaptionGenerator when the decoder returns attention."""
    generator = AttentionCaptionGenerator if returns_attention(model) else CaptionGenerator
    return generator(model, vocabulary, options)
