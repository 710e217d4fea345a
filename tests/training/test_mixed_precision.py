"""Mixed precision: the policy for the devices, loss scaling, and every registered model
under mixed_bfloat16 (the policy of TPUs and CPUs) and, without training, mixed_float16
(the policy of GPUs).

Per model under mixed_bfloat16: it builds with float32 variables, float32 logits and
scores, and float32 logits layers; softmax, cross-entropy and the learned
temperature compute in float32 (checked on the traced training graph, nested
functions included), and so do L2 norms (but for the known exception); a few fit
steps lower the loss and stay finite; the serving signatures return float32.
Under mixed_float16: `compile` scales the loss, and the same graph checks hold.
"""

import math
from dataclasses import dataclass, field

import keras
import numpy as np
import pytest
import tensorflow as tf

from layers import ContrastiveLogits, CrossAttentionFusion
from models.fusions import FUSIONS
from models.losses import RETRIEVAL_LOSSES
from models.registry import build_model, get_model_spec, model_names
from tasks import get_task
from tests.models.test_registry_models import OPTIONS, shapes_split
from training.mixed_precision import enable_mixed_precision, mixed_precision_policy

# Ops that must read float32: softmax (attention and logits), the cross-entropy of
# the losses, and exp/log (the learned temperature, log-probabilities).
FLOAT32_OPS = {
    "Softmax",
    "LogSoftmax",
    "SoftmaxCrossEntropyWithLogits",
    "SparseSoftmaxCrossEntropyWithLogits",
    "Exp",
    "Log",
}
# L2 normalisation: a norm taken in bfloat16 is up to ~0.5% off, so a matching
# pair's cosine is up to ~0.01 off, times a logit scale of up to 100; in float16 a
# sum of squares past 65504 overflows to inf and the unit vector becomes zeros.
NORMALISATION_OPS = {"Rsqrt", "Sqrt"}
# float16 (GPU) is checked on the models whose float32 islands differ: a learned CLIP
# temperature, the pairwise attention score, and the captioner's attention softmax.
FLOAT16_MODELS = ("dual_encoder", "retrieval_attention", "show_attend_tell")
LOW_PRECISION = {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
# The fusions of the registered models as they are built by default (fusion_classifier, vqa).
DEFAULT_FUSIONS = ("concat", "attention")


@dataclass
class Built:
    """A registered model built and compiled under a mixed policy, with its data."""

    task: object
    vocabulary: object
    train: object
    model: keras.Model
    batches: tf.data.Dataset
    traced: list = field(default_factory=list)

    def ops(self) -> list[tuple[str, str, str]]:
        """The ops of one traced training step's forward pass and loss (traced once)."""
        if not self.traced:
            self.traced = traced_ops(loss_function(self.model), *next(iter(self.batches)))
        return self.traced


@pytest.fixture
def mixed_float16():
    """Runs a test under the mixed_float16 dtype policy, then restores the previous one."""
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


@pytest.fixture(scope="module")
def built_models(tiny_shapes_world):
    """Per (model name, the policy on when first asked for), a Built made on first use
    (each test turns its policy on with the mixed_bfloat16 or mixed_float16 fixture)."""
    cache = {}

    def get(name: str) -> Built:
        policy = keras.mixed_precision.dtype_policy().name
        assert policy in LOW_PRECISION, policy
        if (name, policy) not in cache:
            keras.utils.set_random_seed(0)
            spec = get_model_spec(name)
            task = get_task(spec.task)
            train = shapes_split(spec.task, tiny_shapes_world)
            vocabulary = task.build_vocabulary(train, OPTIONS)
            model = spec.builder(**task.model_arguments(vocabulary, OPTIONS))
            task.compile_model(model, spec.training_defaults["learning_rate"], OPTIONS)
            batches = task.make_dataset(train, vocabulary, OPTIONS, training=True).take(2).cache()
            cache[name, policy] = Built(task, vocabulary, train, model, batches)
        return cache[name, policy]

    return get


def dtype_name(tensor) -> str:
    return keras.backend.standardize_dtype(tensor.dtype)


def nested_layers(model: keras.Model):
    """Every layer of `model`, the layers of its nested models included."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from nested_layers(layer)


def traced_ops(function, *args) -> list[tuple[str, str, str]]:
    """(op, node name, dtype) of every node of the graph `function(*args)` traces,
    nested functions (loops, conditionals) included; dtype is that of the op's "T"
    or "dtype" attribute, "" when it has neither."""
    graph = function.get_concrete_function(*args).graph.as_graph_def()
    nodes = list(graph.node) + [node for f in graph.library.function for node in f.node_def]
    ops = []
    for node in nodes:
        keys = [key for key in ("T", "dtype") if key in node.attr and node.attr[key].type]
        dtype = tf.dtypes.as_dtype(node.attr[keys[0]].type).name if keys else ""
        ops.append((node.op, node.name, dtype))
    return ops


def low_precision_nodes(ops, types, dtype: str = "bfloat16") -> list[tuple[str, str]]:
    """The (op, node name) of the ops of `types` that compute in `dtype`."""
    return [(op, name) for op, name, op_dtype in ops if op in types and op_dtype == dtype]


def loss_function(model: keras.Model):
    """A traced training forward pass and loss, as `fit` computes them."""

    @tf.function
    def loss(inputs, targets, *weights):
        predictions = model(inputs, training=True)
        weight = weights[0] if weights else None
        return model.compute_loss(inputs, targets, predictions, weight, training=True)

    return loss


def test_the_graph_check_finds_a_softmax_in_bfloat16_inside_a_loop(mixed_bfloat16):
    dense = keras.layers.Dense(3)

    @tf.function
    def attend(inputs):
        return tf.map_fn(lambda row: keras.ops.softmax(dense(row)), inputs)

    ops = traced_ops(attend, tf.ones([2, 5, 4]))
    assert [op for op, _ in low_precision_nodes(ops, FLOAT32_OPS)] == ["Softmax"]


@pytest.mark.slow
@pytest.mark.parametrize("name", model_names())
def test_builds_with_float32_variables_logits_and_scores(name, mixed_bfloat16, built_models):
    built = built_models(name)
    model = built.model
    assert model.dtype_policy.name == "mixed_bfloat16"
    inputs, *_ = next(iter(built.batches))
    outputs = model(inputs, training=False)
    assert dtype_name(outputs) == "float32"
    assert np.all(np.isfinite(outputs))
    assert {weight.dtype for weight in model.weights} == {"float32"}

    layers = list(nested_layers(model))
    logits_layers = [
        layer
        for layer in layers
        if isinstance(layer, keras.layers.Dense) and layer.name in ("logits", "next_token")
    ]
    if built.task.NAME != "retrieval":
        assert logits_layers, f"{name}: no Dense layer named logits or next_token"
    for layer in logits_layers:
        assert layer.dtype_policy.name == "float32", f"{name}: {layer.path}"
    if built.task.NAME == "retrieval":
        scales = [weight for weight in model.weights if weight.path.endswith("logit_scale")]
        assert scales, f"{name}: no learned temperature"
    for layer in layers:
        if isinstance(layer, ContrastiveLogits):
            # exp(scale) * cos(e, e) with the scale read in float32: a bfloat16 read would
            # be ~0.3% off at the initial log(1 / 0.07).
            eye = keras.ops.cast(keras.ops.eye(4, 8), "bfloat16")
            diagonal = np.diagonal(layer(eye, eye))
            scale = math.exp(min(float(layer.logit_scale.numpy()), math.log(layer.max_scale)))
            np.testing.assert_allclose(diagonal, scale, rtol=1e-6)


def with_policy(request, policy: str) -> None:
    """Turns `policy` on for the rest of the test (through its fixture)."""
    request.getfixturevalue(policy)


def policies_and_models():
    """(policy, model) pairs: every model under bfloat16, FLOAT16_MODELS under float16."""
    return [("mixed_bfloat16", name) for name in model_names()] + [
        ("mixed_float16", name) for name in FLOAT16_MODELS
    ]


@pytest.mark.slow
@pytest.mark.parametrize("policy, name", policies_and_models())
def test_softmax_cross_entropy_and_temperature_compute_in_float32(
    name, policy, request, built_models
):
    with_policy(request, policy)
    built = built_models(name)
    low = LOW_PRECISION[policy]
    batch = next(iter(built.batches))
    assert dtype_name(built.model(batch[0], training=False)) == "float32"
    assert dtype_name(loss_function(built.model)(*batch)) == "float32"
    ops = built.ops()
    assert not low_precision_nodes(ops, FLOAT32_OPS, low), low_precision_nodes(
        ops, FLOAT32_OPS, low
    )
    # The check saw the loss, and the model does run in low precision.
    assert any(op in FLOAT32_OPS and dtype == "float32" for op, _, dtype in ops)
    assert low_precision_nodes(ops, {"Conv2D", "MatMul"}, low), f"{name}: no {low} matmul"


@pytest.mark.slow
@pytest.mark.parametrize("policy, name", policies_and_models())
def test_l2_normalisation_computes_in_float32(name, policy, request, built_models):
    with_policy(request, policy)
    low = low_precision_nodes(built_models(name).ops(), NORMALISATION_OPS, LOW_PRECISION[policy])
    assert not low, f"{name}: in {LOW_PRECISION[policy]}: {low}"


@pytest.mark.slow
@pytest.mark.parametrize("name", FLOAT16_MODELS)
def test_compile_scales_the_loss_under_mixed_float16(name, mixed_float16, built_models):
    optimizer = built_models(name).model.optimizer
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer), type(optimizer)


@pytest.mark.slow
@pytest.mark.parametrize("name", model_names())
def test_a_few_fit_steps_lower_the_loss_and_stay_finite(name, mixed_bfloat16, built_models):
    """Training losses, epoch by epoch: in inference mode a few steps leave the
    batch normalisation statistics near their start, whatever the precision."""
    built = built_models(name)
    model = built.model
    history = model.fit(
        built.batches.repeat(), steps_per_epoch=4, epochs=3, verbose=0, shuffle=False
    ).history["loss"]
    assert all(math.isfinite(loss) for loss in history), history
    assert all(np.all(np.isfinite(weight.numpy())) for weight in model.weights)
    assert history[-1] < history[0], f"{name}: loss {history}"


@pytest.mark.slow
@pytest.mark.parametrize("name", model_names())
def test_serving_signatures_return_float32(name, mixed_bfloat16, built_models):
    built = built_models(name)
    module = built.task.serving_module(built.model, built.vocabulary, OPTIONS)
    decoded = tf.io.decode_image(tf.io.read_file(built.train.image_paths[0]), channels=3)
    png = tf.io.encode_png(decoded)
    texts = tf.constant(["a red square", "a blue circle"])
    numeric = []
    for signature_name, signature in module.signatures().items():
        feed = [
            tf.stack([png, png]) if spec.name == "image_bytes" else texts
            for spec in signature.input_signature
        ]
        for key, value in signature(*feed).items():
            assert value.shape[0] == 2, (signature_name, key, value.shape)
            if value.dtype != tf.string:
                numeric.append(key)
                assert value.dtype == tf.float32, (signature_name, key, value.dtype)
                assert np.all(np.isfinite(value.numpy())), (signature_name, key)
    assert numeric or built.task.NAME == "captioning", f"{name}: no numeric output"


@pytest.mark.slow
@pytest.mark.parametrize("fusion", [name for name in FUSIONS if name not in DEFAULT_FUSIONS])
def test_every_fusion_keeps_softmax_and_cross_entropy_in_float32(
    fusion, mixed_bfloat16, tiny_shapes_world
):
    """The fusions no registered model uses by default, each with the transformer
    text encoder (self-attention) as well."""
    spec = get_model_spec("fusion_classifier")
    task = get_task(spec.task)
    train = shapes_split(spec.task, tiny_shapes_world)
    vocabulary = task.build_vocabulary(train, OPTIONS)
    arguments = task.model_arguments(vocabulary, OPTIONS)
    model = build_model(spec, arguments, {"fusion": fusion, "text_encoder": "transformer"})
    task.compile_model(model, 1e-3, OPTIONS)
    batch = next(iter(task.make_dataset(train, vocabulary, OPTIONS, training=True)))
    assert dtype_name(model(batch[0])) == "float32"
    low = low_precision_nodes(traced_ops(loss_function(model), *batch), FLOAT32_OPS)
    assert not low, f"{fusion}: in bfloat16: {low}"


def test_cross_attention_updates_are_not_rounded_away_in_bfloat16(mixed_bfloat16):
    rng = np.random.default_rng(0)
    regions = rng.normal(size=(4, 16, 64)).astype("float32")
    tokens = rng.normal(size=(4, 8, 64)).astype("float32")
    block = CrossAttentionFusion(num_heads=4, key_dim=16, feed_forward_dim=128, dropout=0.0)
    updated, _ = block(regions, tokens)
    start = keras.ops.cast(keras.ops.cast(regions, block.compute_dtype), "float32")
    unchanged = np.mean(np.asarray(keras.ops.cast(updated, "float32")) == np.asarray(start))
    assert unchanged < 0.01, f"{unchanged:.0%} of the region features did not change"


@pytest.mark.parametrize("loss_name", sorted(RETRIEVAL_LOSSES))
def test_retrieval_losses_compute_in_float32(loss_name):
    scores = np.random.default_rng(0).normal(size=(6, 6)).astype("float32")
    low = keras.ops.cast(scores, "bfloat16")
    targets = np.zeros(6, "int32")  # ignored: the matching pairs are the diagonal
    loss = RETRIEVAL_LOSSES[loss_name]()
    value = loss(targets, low)
    assert dtype_name(value) == "float32"
    reference = loss(targets, keras.ops.cast(low, "float32"))
    np.testing.assert_allclose(value, reference, rtol=1e-6)


@pytest.fixture
def restored_policy():
    previous = keras.mixed_precision.dtype_policy()
    yield
    keras.mixed_precision.set_dtype_policy(previous)


@pytest.mark.parametrize(
    "devices, policy",
    [
        ("/cpu:0", "mixed_bfloat16"),
        (["/cpu:0", "/gpu:0"], "mixed_float16"),
        ("/job:worker/replica:0/task:1/device:GPU:3", "mixed_float16"),
        (["/cpu:0", "/job:worker/task:0/device:TPU:0"], "mixed_bfloat16"),
        (tf.config.list_logical_devices("CPU"), "mixed_bfloat16"),
    ],
)
def test_policy_for_devices(devices, policy):
    assert mixed_precision_policy(devices) == policy


def test_policy_for_strategies_follows_their_devices():
    local = "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"
    assert mixed_precision_policy() == local
    assert mixed_precision_policy(tf.distribute.get_strategy()) == local
    assert mixed_precision_policy(tf.distribute.OneDeviceStrategy("/cpu:0")) == "mixed_bfloat16"
    assert mixed_precision_policy(tf.distribute.MirroredStrategy(["/cpu:0"])) == "mixed_bfloat16"


@pytest.mark.parametrize("device", ["no device", "/job:worker/task:0"])
def test_a_string_that_names_no_device_is_refused(device):
    with pytest.raises(ValueError, match=repr(device)):
        mixed_precision_policy(device)


def test_enable_mixed_precision_sets_the_global_policy(restored_policy):
    assert enable_mixed_precision(["/cpu:0"]) == "mixed_bfloat16"
    assert keras.mixed_precision.dtype_policy().name == "mixed_bfloat16"
    assert enable_mixed_precision("/gpu:0") == "mixed_float16"
    assert keras.mixed_precision.dtype_policy().name == "mixed_float16"


def image_only_model():
    spec = get_model_spec("image_only")
    task = get_task(spec.task)
    model = spec.builder(vocabulary_size=20, sequence_length=8, num_classes=3, image_size=32)
    task.compile_model(model, 1e-3, OPTIONS)
    return model


def test_compile_wraps_the_optimizer_in_loss_scaling_under_mixed_float16(restored_policy):
    """Keras 3 `compile` does it by itself for a model built under mixed_float16, so the
    zoo has no optimizer wrapper; under bfloat16, or for a model built before the policy
    was set, it does not."""
    float32_model = image_only_model()
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    model = image_only_model()
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.optimizer.inner_optimizer.clipnorm == 5.0
    float32_model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert not isinstance(float32_model.optimizer, keras.optimizers.LossScaleOptimizer)
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    assert not isinstance(image_only_model().optimizer, keras.optimizers.LossScaleOptimizer)
