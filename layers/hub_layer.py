"""A Keras 3 layer that runs (and fine-tunes) a TF2 SavedModel from TF Hub or Kaggle."""

import inspect
import re

import keras
import tensorflow as tf

from layers.hub_handles import absolute_handle, load_module


def _keras_name(variable_name: str) -> str:
    """`conv2d/kernel:0` -> `conv2d_kernel`: no ":" or "/", so optimizer slot names are valid."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", variable_name.split(":")[0]) or "variable"


def _cast_like(value, spec):
    """Casts a floating (integer) tensor to the floating (integer) dtype that `spec` declares."""
    if not isinstance(spec, tf.TensorSpec) or not tf.is_tensor(value) or value.dtype == spec.dtype:
        return value
    same_kind = (value.dtype.is_floating and spec.dtype.is_floating) or (
        value.dtype.is_integer and spec.dtype.is_integer
    )
    return tf.cast(value, spec.dtype) if same_kind else value


def _cast_floats(value):
    if tf.is_tensor(value) and value.dtype.is_floating and value.dtype != tf.float32:
        return tf.cast(value, tf.float32)
    return value


def _concrete_functions(function) -> list:
    if hasattr(function, "concrete_functions"):
        return list(function.concrete_functions)
    return [function] if hasattr(function, "structured_input_signature") else []


def function_input_specs(function, is_signature: bool = False, arguments=()):
    """The input TensorSpecs of a loaded module's `__call__` (its first positional
    argument) or of a signature (its inputs other than `arguments`), or None."""
    functions = _concrete_functions(function)
    if not functions:
        return None
    args, kwargs = functions[0].structured_input_signature
    if is_signature:
        return {key: spec for key, spec in kwargs.items() if key not in arguments}
    return args[0] if args else None


@keras.saving.register_keras_serializable(package="mmzoo")
class HubLayer(keras.layers.Layer):
    """Wraps a TF2 SavedModel (a TF Hub / Kaggle "Reusable SavedModel") as a Keras 3 layer.

    `hub.KerasLayer` is a tf-keras layer that Keras 3 models reject, and
    `keras.layers.TFSMLayer` keeps the loaded variables' `:0` names, which
    breaks optimizers with slots (Adam: "not a valid scope name"). This layer
    loads the module in `__init__` (so it works in the functional API at once)
    and wraps each module variable in a Keras variable named without ':' or
    '/' that shares the loaded `tf.Variable`, so any Keras optimizer fine-tunes
    it and `.keras` files save and restore it. The module's non-trainable
    variables (e.g. batch-norm moving statistics) are non-trainable weights.

    The module is called through `__call__(inputs, **arguments)` or, with
    `signature`, through `signatures[signature](**inputs, **arguments)`. A
    `training` flag goes to `__call__` only when it takes one, and is True only
    when the layer is trainable and called in training (as `hub.KerasLayer`
    does). When trainable, the module's `regularization_losses` join the
    layer's losses. SavedModels fix their dtypes when saved, so this layer
    keeps a float32 policy and casts floating (and integer) inputs to the
    dtypes that the module's input spec declares, under mixed precision too.
    It computes with `tf.*`: a SavedModel only runs on the TensorFlow backend.

    Args:
        handle: a SavedModel folder, a `.tar.gz` of one, or a tfhub.dev /
            kaggle.com URL (see `layers.hub_handles.resolve_handle`), without
            the command line's `hub:` prefix. Loading a `.keras` file that holds
            this layer loads the module from the same handle again.
        signature: the name of a signature to call instead of `__call__`,
            e.g. `"serving_default"`.
        output_key: the entry to return when the module returns a dict; by
            default a dict output is returned whole.
        arguments: extra keyword arguments for every call, e.g.
            `{"batch_norm_momentum": 0.99}`; JSON-serializable values.
        trainable: whether fitting updates the module's trainable variables.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: what the module takes: a tensor (images, strings, ...) or a dict
            of tensors (e.g. a BERT encoder's `input_word_ids`, `input_mask`,
            `input_type_ids`). A signature with a single input also takes a
            bare tensor.
        training: whether the surrounding model is training.

    Returns:
        The module's output: a tensor, a dict of tensors, or the `output_key`
        entry of the dict.

    Example:
        >>> encoder = HubLayer(  # doctest: +SKIP
        ...     "/models/efficientnet_b0_feature_vector", trainable=True
        ... )
        >>> encoder.input_specs()  # doctest: +SKIP
        TensorSpec(shape=(None, 224, 224, 3), dtype=tf.float32, name='inputs')
        >>> images = keras.Input((224, 224, 3))  # doctest: +SKIP
        >>> features = encoder(images)  # doctest: +SKIP
        >>> tuple(features.shape)  # doctest: +SKIP
        (None, 1280)
    """

    def __init__(
        self,
        handle: str,
        signature: str | None = None,
        output_key: str | None = None,
        arguments: dict | None = None,
        trainable: bool = False,
        **kwargs,
    ):
        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                f"Hub handle {handle!r}: a hub encoder runs a TensorFlow SavedModel and needs "
                f"KERAS_BACKEND=tensorflow; this process runs Keras on "
                f"{keras.backend.backend()!r}. Use a built-in encoder (e.g. small_cnn, lstm) there."
            )
        kwargs.setdefault("dtype", "float32")
        kwargs.setdefault("autocast", False)
        super().__init__(trainable=trainable, **kwargs)
        # A module's functions may hold ops XLA cannot compile (strings, lookup tables), so
        # Keras' jit_compile="auto" (XLA on a single GPU) must not pick XLA for this model.
        self.supports_jit = False
        self.handle = absolute_handle(handle)
        self.signature = signature
        self.output_key = output_key
        self.arguments = dict(arguments or {})
        self._module = load_module(self.handle)
        self._function = self._module_function()
        self._takes_training = self.signature is None and self._accepts_training()
        self._regularization_losses = list(getattr(self._module, "regularization_losses", []))
        if not all(callable(loss) for loss in self._regularization_losses):
            raise ValueError(
                f"Hub module {handle!r} has regularization_losses that are not all "
                "zero-argument callables."
            )
        self._wrap_module_variables()
        self.built = True

    @property
    def module_regularization_losses(self) -> list:
        """The module's `regularization_losses`: zero-argument callables giving scalars."""
        return list(self._regularization_losses)

    def _module_function(self):
        if self.signature is not None:
            signatures = getattr(self._module, "signatures", {})
            if self.signature not in signatures:
                raise ValueError(
                    f"Hub module {self.handle!r} has no signature {self.signature!r} "
                    f"(available: {sorted(signatures)})."
                )
            return signatures[self.signature]
        if not callable(self._module):
            signatures = sorted(getattr(self._module, "signatures", {}))
            raise ValueError(
                f"Hub module {self.handle!r} has no __call__; pass signature= one of {signatures}."
            )
        return self._module.__call__

    def _accepts_training(self) -> bool:
        try:
            return "training" in inspect.signature(self._function).parameters
        except (TypeError, ValueError):
            return False

    def _concrete_functions(self) -> list:
        return _concrete_functions(self._function)

    def _module_variables(self) -> list:
        """The module's `variables`, then any others its functions capture, each once."""
        variables = list(getattr(self._module, "variables", []))
        for function in self._concrete_functions():
            variables.extend(function.variables)
        unique = {}
        for variable in variables:
            unique.setdefault(id(variable), variable)
        return list(unique.values())

    def _wrap_module_variables(self):
        listed = getattr(self._module, "trainable_variables", None)
        trainable_ids = None if listed is None else {id(v) for v in listed}
        used_names = set()
        with keras.name_scope(self.name, caller=self):
            for variable in self._module_variables():
                name = base = _keras_name(variable.name)
                suffix = 0
                while name in used_names:
                    suffix += 1
                    name = f"{base}_{suffix}"
                used_names.add(name)
                trainable = (
                    variable.trainable if trainable_ids is None else id(variable) in trainable_ids
                )
                wrapper = keras.Variable(
                    initializer=variable,
                    shape=variable.shape,
                    dtype=variable.dtype,
                    trainable=trainable,
                    autocast=False,
                    name=name,
                )
                self._track_variable(wrapper)

    def input_specs(self):
        """The `tf.TensorSpec` structure the module's function takes as inputs, or None.

        For `__call__` this is the first positional argument of its first traced
        function (a `TensorSpec`, or a dict of them for BERT-style encoders);
        for a signature, the dict of its inputs other than `arguments`. Model
        builders read an image encoder's expected size from it.

        Returns:
            A `tf.TensorSpec`, a nest of them, or None when the module does not say.
        """
        return function_input_specs(self._function, self.signature is not None, self.arguments)

    def _signature_inputs(self, inputs) -> dict:
        if isinstance(inputs, dict):
            return dict(inputs)
        names = sorted(self.input_specs() or {})
        if len(names) != 1:
            raise ValueError(
                f"Signature {self.signature!r} of hub module {self.handle!r} takes inputs "
                f"{names}: pass a dict with these keys, not a single tensor."
            )
        return {names[0]: inputs}

    def _cast_inputs(self, inputs):
        specs = self.input_specs()
        try:
            return tf.nest.map_structure(_cast_like, inputs, specs, check_types=False)
        except (TypeError, ValueError):
            return tf.nest.map_structure(_cast_floats, inputs)

    def _run_module(self, inputs, training: bool):
        if self.signature is not None:
            inputs = self._cast_inputs(self._signature_inputs(inputs))
            return self._function(**inputs, **self.arguments)
        kwargs = dict(self.arguments)
        if self._takes_training:
            kwargs["training"] = training
        return self._function(self._cast_inputs(inputs), **kwargs)

    def _select_output(self, outputs):
        if self.output_key is None:
            return outputs
        if not isinstance(outputs, dict):
            raise ValueError(
                f"output_key={self.output_key!r} was given, but hub module {self.handle!r} "
                f"returns a {type(outputs).__name__}, not a dict."
            )
        if self.output_key not in outputs:
            raise ValueError(
                f"Hub module {self.handle!r} has no output {self.output_key!r} "
                f"(available: {sorted(outputs)})."
            )
        return outputs[self.output_key]

    def call(self, inputs, training=None):
        outputs = self._run_module(inputs, training=bool(training) and self.trainable)
        outputs = self._select_output(outputs)
        if self.trainable:
            for loss in self._regularization_losses:
                self.add_loss(loss())
        return outputs

    def compute_output_spec(self, inputs, training=None):
        specs = keras.tree.map_structure(lambda x: tf.TensorSpec(x.shape, x.dtype), inputs)
        if self.signature is not None:
            self._signature_inputs(specs)  # a clear error for a bare tensor into several inputs
        try:
            traced = tf.function(lambda x: self._run_module(x, training=False))
            outputs = traced.get_concrete_function(specs).structured_outputs
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"Hub module {self.handle!r} cannot take inputs {specs}; it expects "
                f"{self.input_specs()}. ({error})"
            ) from error
        outputs = self._select_output(outputs)
        return keras.tree.map_structure(lambda x: keras.KerasTensor(x.shape, x.dtype), outputs)

    def compute_output_shape(self, input_shape):
        specs = self.input_specs()

        def dtype_of(spec):
            return spec.dtype if isinstance(spec, tf.TensorSpec) else tf.float32

        if isinstance(input_shape, dict):
            specs = specs if isinstance(specs, dict) else {}
            inputs = {
                key: keras.KerasTensor(shape, dtype_of(specs.get(key)))
                for key, shape in input_shape.items()
            }
        else:
            if isinstance(specs, dict) and len(specs) == 1:
                specs = next(iter(specs.values()))
            inputs = keras.KerasTensor(input_shape, dtype_of(specs))
        outputs = self.compute_output_spec(inputs)
        return keras.tree.map_structure(lambda x: x.shape, outputs)

    def get_config(self):
        config = super().get_config()
        config.update(
            handle=self.handle,
            signature=self.signature,
            output_key=self.output_key,
            arguments=dict(self.arguments),
        )
        return config
