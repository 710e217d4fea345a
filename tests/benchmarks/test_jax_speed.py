"""The JAX benchmark (benchmarks/jax_speed.py): one tiny round on JAX's CPU backend with
TensorFlow unimportable, as on the GPU machine it is for, writes its rows and table.
That round trains show_and_tell only (tests/models/test_jax_backend.py trains every
model under JAX); the batches of the other two are checked against their builders."""

import json
import textwrap

import pytest

from benchmarks import jax_speed
from tests.models.jax_processes import ROOT, run_without_tensorflow

# Runs the script as `python benchmarks/jax_speed.py ARGS` would.
AS_A_SCRIPT = textwrap.dedent(
    """
    import runpy
    script, *sys.argv[1:] = sys.argv[1:]
    sys.argv[0] = script
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as done:
        if done.code:
            raise
    loaded = [name for name, module in sys.modules.items() if module and name.startswith(ABSENT)]
    print("tensorflow modules:", loaded)
    """
)


@pytest.mark.slow
def test_a_tiny_round_without_tensorflow_writes_rows_and_a_table(tmp_path):
    output = tmp_path / "jax.json"
    flags = ["--models", "show_and_tell", "--rounds", "1", "--steps", "3", "--batch-size", "4"]
    flags += ["--batches", "2"]
    flags += ["--image-size", "32", "--peak-size", "256", "--json", str(output)]
    completed = run_without_tensorflow(AS_A_SCRIPT, "benchmarks/jax_speed.py", *flags)
    assert "tensorflow modules: []" in completed.stdout
    rows = json.loads(output.read_text())
    assert [row["model"] for row in rows] == ["show_and_tell"]
    for row in rows:
        assert row["device"]["platform"] == "cpu" and row["figures"]["ours_jax"]["blocks"] == 1
        assert row["per_s"] > 0 and row["training_flops_per_example"] > 0, row
        assert (
            0
            < row["of_peak"]
            == pytest.approx(
                row["per_s"] * row["training_flops_per_example"] / (row["peak_tflops"] * 1e12)
            )
        )
        assert f"| `{row['model']}` (training, batch 4) |" in completed.stdout


def test_the_world_sizes_are_those_the_tensorflow_benchmark_recorded():
    recorded = json.loads((ROOT / "benchmarks" / "results" / "benchmarks.json").read_text())
    for row in recorded["frameworks"]:
        if row["benchmark"] != "training":
            continue
        sizes = {"vocabulary_size": row["vocabulary_size"], "num_classes": row["num_classes"]}
        expected = {key: value for key, value in sizes.items() if value is not None}
        assert jax_speed.WORLD_SIZES[row["model"]] == expected, row["model"]


@pytest.mark.parametrize("name", jax_speed.MODELS)
def test_each_random_batch_has_the_shapes_the_pipeline_feeds(name):
    import numpy as np

    from models import get_model_spec

    spec = get_model_spec(name)
    arguments = {"image_size": 32, "sequence_length": 16, **jax_speed.WORLD_SIZES[name]}
    rng = np.random.default_rng(0)
    inputs, targets, weights = jax_speed.random_batch(spec.task, arguments, 4, rng)
    length = 15 if spec.task == "captioning" else 16  # teacher forcing: the next tokens
    assert inputs["image"].shape == (4, 32, 32, 3) and inputs["tokens"].shape == (4, length)
    assert inputs["tokens"].max() < arguments["vocabulary_size"]
    assert (inputs["tokens"][:, :4] > 0).all() and (inputs["tokens"][:, -1] == 0).all()
    if spec.task == "captioning":
        assert targets.shape == weights.shape == (4, 15)
        np.testing.assert_array_equal(weights, targets != 0)
    elif spec.task == "vqa":
        assert weights is None and targets.max() < arguments["num_classes"]


class Lowered:
    """A stand-in for jax's Lowered: what its and its compiled form's cost_analysis give."""

    def __init__(self, before, after):
        self.before, self.after = before, after

    def cost_analysis(self):
        return self.before

    def compile(self):
        return Lowered(self.after, None)


def test_flops_come_from_the_hlo_else_from_the_compiled_computation_else_none():
    assert jax_speed.counted_flops(Lowered({"flops": 12.0}, {"flops": 99.0})) == 12.0
    assert jax_speed.counted_flops(Lowered([{"flops": 7.0}], None)) == 7.0  # older JAX
    # GPU plugins answer None for the HLO (jax-ml/jax#22713).
    assert jax_speed.counted_flops(Lowered(None, {"flops": 5.0})) == 5.0
    assert jax_speed.counted_flops(Lowered(None, [])) is None
    rows = [{"model": "vqa", "batch_size": 64, "training_flops_per_example": None, "tflops": None,
             "of_peak": None, "peak_size": 8192, "peak_tflops": 400.0,
             "figures": {"ours_jax": {"median": 900.0, "min": 880.0, "max": 910.0}}}]  # fmt: skip
    device = {"jax": "0.11", "kind": "H200", "platform": "gpu", "matmul_precision": "default"}
    assert "| `vqa` (training, batch 64) | 900 (880-910) | not counted | - | - |" in (
        jax_speed.format_rows(rows, device)
    )
