"""A trained model's encoders as TF2 Hub "Reusable SavedModels" (tf.Module wrappers).

Each wrapper holds the part of one backbone of a trained model (the nested
"image_backbone" or "text_backbone") that computes what it returns, and has
what https://www.tensorflow.org/hub/reusable_saved_models asks of a reusable
SavedModel: `__call__(inputs, training=False)` traced for both values of
`training`, and the saved attributes `variables`, `trainable_variables` and
`regularization_losses`, so that `hub.load` calls it and `hub.KerasLayer(...,
trainable=True)` fine-tunes it. Each also has a `serving_default` signature
(inference mode). Core TensorFlow ops only: a published folder loads in a
process that imports only TensorFlow.
"""

from pathlib import Path

import keras
import tensorflow as tf

from datasets.tokenizers import load_text_vocabulary
from layers import HubLayer
from serving.guards import on_nonempty_batch, texts_from_strings


class HubModule(tf.Module):
    """What both encoder wrappers share: the backbone and the reusable SavedModel attributes.

    tf.Module computes `variables` and `trainable_variables` as properties, which
    a SavedModel does not keep; here they are plain lists (the class attributes
    below shadow the properties), saved with the module as the Hub convention needs.

    Args:
        backbone: the Keras backbone, a functional model with dict outputs.
        outputs: the keys of its outputs the module uses; the module keeps the
            layers that compute them, so every trainable variable gets a gradient.
        input_spec: the input signature of `__call__`.
        name: the module's name.
    """

    variables = ()
    trainable_variables = ()

    def __init__(
        self, backbone: keras.Model, outputs: tuple[str, ...], input_spec: tf.TensorSpec, name: str
    ):
        super().__init__(name=name)
        self.backbone = keras.Model(
            backbone.input, {key: backbone.output[key] for key in outputs}, name=backbone.name
        )
        self.input_spec = input_spec
        self.variables = list(self.backbone.variables)
        self.trainable_variables = list(self.backbone.trainable_variables)
        self.regularization_losses = regularization_losses(self.backbone)

    def _trace(self) -> None:
        """Traces `__call__` for training=False and True, and `serving_default`."""
        for training in (False, True):
            self.__call__.get_concrete_function(self.input_spec, training=training)
        self.serving_default = tf.function(
            lambda inputs: self._serving_outputs(self(inputs, training=False)),
            input_signature=[self.input_spec],
        )

    def _serving_outputs(self, outputs):
        """serving_default's outputs from `__call__`'s (a dict, as signatures return)."""
        return outputs

    def _run_backbone(self, inputs: tf.Tensor, training: bool) -> dict[str, tf.Tensor]:
        """The backbone's outputs as float32. In inference an empty batch runs on one
        placeholder (`on_nonempty_batch`: oneDNN's convolution mishandles a batch of 0);
        in training it never does, so batch norm statistics only see real inputs."""

        def run(batch):
            outputs = self.backbone(batch, training=training)
            return {key: tf.cast(value, tf.float32) for key, value in outputs.items()}

        return run(inputs) if training else on_nonempty_batch(run, inputs)


def regularization_losses(backbone: keras.Model) -> list[tf.function]:
    """One zero-argument tf.function per regularized trainable weight of `backbone`,
    plus the regularization losses of the trainable hub modules it holds.

    Each returns the scalar penalty that the weight's Keras regularizer adds to
    `backbone.losses`, from the weight's current value; a hub module's losses are
    its own functions, re-saved as they are.
    """

    def penalty_of(variable):
        return tf.function(lambda: variable.regularizer(variable), input_signature=[])

    own = [
        penalty_of(variable)
        for variable in backbone.trainable_variables
        if variable.regularizer is not None
    ]
    hub_modules = [
        layer
        for layer in backbone._flatten_layers()
        if isinstance(layer, HubLayer) and layer.trainable
    ]
    return own + [loss for layer in hub_modules for loss in layer.module_regularization_losses]


def output_width(backbone: keras.Model, key: str, rank: int) -> int:
    """The static last dimension of the backbone's output `key` of rank `rank`, or ValueError."""
    outputs = backbone.output if isinstance(backbone.output, dict) else {}
    shape = tuple(outputs[key].shape) if key in outputs else ()
    if len(shape) != rank or shape[-1] is None:
        raise ValueError(
            f"Backbone {backbone.name!r} returns no {key!r} of rank {rank} with a static last "
            f"dimension (its outputs: {sorted(outputs)})."
        )
    return int(shape[-1])


class ImageEncoderModule(HubModule):
    """An image backbone as a TF Hub "image feature vector" module.

    `__call__(images, training=False)` takes float32 [None, S, S, 3] in [0, 1],
    S fixed in its input signature (the size the model was trained at), and
    returns the pooled feature vector float32 [B, D]. `serving_default` maps
    "images" to {"default": [B, D]} in inference mode.

    Args:
        backbone: a model of the image encoder contract: {"image": float32
            [B, S, S, 3] in [0, 1]} -> {"pooled": [B, D], "regions": [B, N, D]}.
        name: the module's name.

    Raises:
        ValueError: if the backbone does not take square RGB images of a static
            size or returns no "pooled" [B, D].

    Example:
        >>> module = ImageEncoderModule(image_backbone)
        >>> tf.saved_model.save(module, "image_encoder",
        ...                     signatures={"serving_default": module.serving_default})
    """

    def __init__(self, backbone: keras.Model, name: str = "image_encoder"):
        shape = tuple(backbone.inputs[0].shape) if len(backbone.inputs) == 1 else ()
        if len(shape) != 4 or shape[1] is None or shape[1] != shape[2] or shape[3] != 3:
            raise ValueError(
                f"Image backbone {backbone.name!r} takes "
                f"{[tuple(tensor.shape) for tensor in backbone.inputs]}; an image encoder "
                "module needs one input [B, S, S, 3] of a static size S."
            )
        output_dim = output_width(backbone, "pooled", rank=2)
        spec = tf.TensorSpec([None, *shape[1:]], tf.float32, name="images")
        super().__init__(backbone, ("pooled",), spec, name)
        self.image_size = int(shape[1])
        self.output_dim = output_dim
        self._trace()

    @tf.function
    def __call__(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self._run_backbone(images, training)["pooled"]

    def _serving_outputs(self, outputs):
        return {"default": outputs}


class TextEncoderModule(HubModule):
    """A text backbone with its text preprocessing as a TF Hub text encoder module.

    `__call__(texts, training=False)` takes string [None] and returns
    {"default": pooled [B, D], "pooled_output": pooled, "sequence_output":
    [B, T, D]}, all float32. For a backbone of token ids the texts go through
    what the model's own export does to them: cut to a length bound tied to T
    (`serving.guards`), then the vocabulary's `encode` (lowercasing, punctuation
    to spaces, splitting on whitespace, then words or WordPiece pieces, unknown
    ones as <unk>, truncation and zero padding to the T tokens the backbone was trained on;
    "sequence_output" holds the backbone's outputs at the padding too). The
    vocabulary is then in the SavedModel twice: as the lookup table's constants
    and as the asset `vocabulary_file` (one token per line, in id order) for
    other tokenizers. A backbone that reads strings itself (built on a hub text
    module) gets the texts as they are. `serving_default` maps "texts" to the
    same outputs in inference mode.

    Args:
        backbone: a model of the text encoder contract, "tokens" int32 [B, T] ->
            {"pooled": [B, D], "sequence": [B, T, D]}, or one reading "text"
            string [B] (a hub text backbone).
        vocabulary_file: the vocabulary a token backbone was trained with
            (`WordVocabulary.save`, or an export's assets.extra/vocabulary.txt);
            None for a backbone that reads strings.
        tokenizer: the kind of vocabulary_file, "word" or "wordpiece" (the model
            card's "tokenizer"); a wordpiece module needs tensorflow-text's ops.
        name: the module's name.

    Raises:
        ValueError: if the backbone reads neither token ids [B, T] of a static T
            nor strings [B], lacks "pooled" or "sequence", or reads token ids and
            no vocabulary_file is given.
    """

    def __init__(
        self,
        backbone: keras.Model,
        vocabulary_file: str | Path | None = None,
        name: str = "text_encoder",
        tokenizer: str = "word",
    ):
        shape = tuple(backbone.inputs[0].shape) if len(backbone.inputs) == 1 else ()
        dtype = str(backbone.inputs[0].dtype) if len(backbone.inputs) == 1 else ""
        reads_tokens = len(shape) == 2 and shape[1] is not None and dtype.startswith("int")
        if not reads_tokens and (len(shape), dtype) != (1, "string"):
            raise ValueError(
                f"Text backbone {backbone.name!r} takes "
                f"{[(tuple(tensor.shape), tensor.dtype) for tensor in backbone.inputs]}; a text "
                "encoder module needs one input of token ids [B, T] of a static length T, or "
                "of strings [B]."
            )
        if reads_tokens and vocabulary_file is None:
            raise ValueError(
                f"Text backbone {backbone.name!r} reads token ids: its vocabulary_file is needed."
            )
        output_dim = output_width(backbone, "pooled", rank=2)
        output_width(backbone, "sequence", rank=3)
        spec = tf.TensorSpec([None], tf.string, name="texts")
        super().__init__(backbone, ("pooled", "sequence"), spec, name)
        self.output_dim = output_dim
        self.sequence_length = backbone.output["sequence"].shape[1]
        self.vocabulary = None
        if reads_tokens:
            self.vocabulary = load_text_vocabulary(vocabulary_file, tokenizer)
            self.vocabulary_file = tf.saved_model.Asset(str(vocabulary_file))
        self._trace()

    def backbone_inputs(self, texts: tf.Tensor) -> tf.Tensor:
        """string [B] -> what the backbone reads: int32 [B, T] token ids, or the strings."""
        if self.vocabulary is None:
            return texts
        texts = texts_from_strings(texts, "texts", self.sequence_length)
        return self.vocabulary.encode(texts, self.sequence_length)

    @tf.function
    def __call__(self, texts: tf.Tensor, training: bool = False) -> dict[str, tf.Tensor]:
        outputs = self._run_backbone(self.backbone_inputs(texts), training)
        return {
            "default": outputs["pooled"],
            "pooled_output": outputs["pooled"],
            "sequence_output": outputs["sequence"],
        }
