"""The framework benchmark: PyTorch twins train, and one tiny run.py round writes its report.

torch is the benchmarks' own requirement (benchmarks/requirements.txt); without it the
twin tests are skipped and the run reports the torch part as skipped, with the reason.
"""

import importlib.util
import json
import platform

import numpy as np
import pytest

from benchmarks import frameworks, run
from training.onednn import X86

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (benchmarks/requirements.txt)")
@pytest.mark.parametrize("name", frameworks.MODELS)
def test_each_twin_trains_and_counts_its_flops(name):
    import torch

    from benchmarks.torch_twins import TwinTrainer, build_twin

    torch.manual_seed(0)
    twin = build_twin(name, vocabulary_size=30, num_classes=5)
    images = torch.rand(4, 3, 64, 64)
    tokens = torch.randint(1, 30, (4, 32 if name != "show_and_tell" else 31))
    tokens[:, 20:] = 0
    targets = {
        "dual_encoder": torch.zeros(4, dtype=torch.long),
        "show_and_tell": torch.randint(1, 30, (4, 31)),
        "vqa": torch.arange(4) % 5,
    }[name]
    weights = (targets != 0).float() if name == "show_and_tell" else None
    trainer = TwinTrainer(twin, 1e-3, accuracy=name != "dual_encoder")
    losses = [float(trainer.step(images, tokens, targets, weights)) for _ in range(5)]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses
    assert frameworks.twin_flops(torch, trainer, (images, tokens, targets, weights)) > 0


@pytest.mark.slow
def test_a_tiny_run_writes_json_markdown_and_chart(tmp_path, monkeypatch):
    quick = [*run.QUICK["frameworks"], "--models", "vqa"]
    monkeypatch.setitem(run.QUICK, "frameworks", quick)
    assert run.main(["--quick", "--only", "frameworks", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "benchmarks.json").read_text())
    assert results["quick"] and results["machine"]["cpus"] >= 1
    # conftest asks for oneDNN's kernels on x86 as train.py does, whatever TF's default.
    assert results["machine"]["onednn"] is (platform.machine() in X86)
    training, *inference = results["frameworks"]
    assert training["model"] == "vqa" and training["training_flops_per_example"] > 0
    peak = training["peak_gflops"]
    assert peak > 0
    assert training["ours_trainer_of_peak"] == pytest.approx(
        training["ours_trainer_per_s"] * training["training_flops_per_example"] / 1e9 / peak
    )
    for subject in ("ours_trainer", "ours_fit", "peak_matmul"):
        figure = training["figures"][subject]
        assert len(figure["samples"]) == 1 and figure["median"] > 0
    if HAS_TORCH:
        assert training["torch_skipped"] is None
        assert training["ours_over_torch"] == pytest.approx(
            training["ours_trainer_per_s"] / training["torch_per_s"]
        )
        assert training["torch_format"] in ("torch_nchw", "torch_channels_last")
        # One round: its one ratio is the ratio of the medians, unless a block was busy.
        busy = any(
            training["figures"][subject]["all_busy"]
            for subject in ("ours_trainer", training["torch_format"])
        )
        expected = [] if busy else [pytest.approx(training["ours_over_torch"])]
        assert training["ours_over_torch_per_round"] == expected
    else:
        assert "torch is not installed" in training["torch_skipped"]
        assert "torch_per_s" not in training
    assert [row["tower"] for row in inference] == ["image_encoder", "text_encoder"]
    assert all(row["per_s"] > 0 and row["flops_per_example"] > 0 for row in inference)
    for row in inference:
        if HAS_TORCH:
            assert row["ours_over_torch"] == pytest.approx(row["per_s"] / row["torch_per_s"])
            assert row["figures"][row["torch_format"]]["median"] == row["torch_per_s"] > 0
        else:
            assert "torch is not installed" in row["torch_skipped"]
    twins = {row["tower"]: row.get("torch_format") for row in inference}
    if HAS_TORCH:
        assert twins["image_encoder"] in (
            "torch_image_encoder_nchw",
            "torch_image_encoder_channels_last",
        )
        assert twins["text_encoder"] == "torch_text_encoder"
        image_row = inference[0]
        layouts = ("torch_image_encoder_nchw", "torch_image_encoder_channels_last")
        faster = max(image_row["figures"][subject]["median"] for subject in layouts)
        assert image_row["torch_per_s"] == faster
    report = (tmp_path / "benchmarks.md").read_text()
    assert "| `vqa` (training, batch 8) |" in report and "image_encoder (inference" in report
    assert run.processor_words(results["machine"]) in report
    chart = tmp_path / "benchmarks.png"
    if HAS_MATPLOTLIB:
        assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and results["chart_skipped"] is None
    else:
        assert not chart.exists() and "matplotlib" in results["chart_skipped"]


def test_the_ratio_cell_shows_the_per_round_range_beside_the_verdict():
    def figure(median):
        return {
            "median": median, "min": median - 1, "max": median + 1, "all_busy": False,
            "blocks": 3, "blocks_kept": 3, "others_cpu_share_max": 0.01,
        }  # fmt: skip

    row = {
        "benchmark": "training", "model": "vqa", "batch_size": 64, "threads": 2,
        "figures": {
            "ours_trainer": figure(95.0), "ours_fit": figure(99.0),
            "torch_channels_last": figure(100.0), "peak_matmul": figure(200.0),
        },
        "torch_per_s": 100.0, "torch_format": "torch_channels_last",
        "ours_over_torch": 0.95, "fit_over_torch": 0.99,
        "ours_over_torch_per_round": [0.91, 1.02, 0.95],
        "training_flops_per_example": 1.8e8, "ours_trainer_gflops": 17.1,
        "ours_trainer_of_peak": 0.0855, "peak_gflops": 200.0,
    }  # fmt: skip
    table = frameworks.format_rows([row])
    assert "| 0.95 (NO; rounds 0.91-1.02); fit 0.99 |" in table, table
    row["ours_over_torch_per_round"] = [0.95]  # one quiet round: no range to show
    assert "| 0.95 (NO); fit 0.99 |" in frameworks.format_rows([row])


def test_an_inference_row_shows_the_twin_s_figure_and_the_ratio():
    def figure(median, busy=False):
        return {
            "median": median, "min": median - 10, "max": median + 10, "all_busy": busy,
            "blocks": 3, "blocks_kept": 3, "others_cpu_share_max": 0.01,
        }  # fmt: skip

    row = {
        "benchmark": "inference", "model": "dual_encoder image_encoder",
        "tower": "image_encoder", "batch_size": 32, "threads": 2, "per_s": 4500.0,
        "flops_per_example": 3.15e7, "gflops": 141.8, "of_peak": 0.38, "goal_of_peak": 0.6,
        "peak_gflops": 377.0,
        "figures": {
            "image_encoder": figure(4500.0), "peak_matmul": figure(377.0),
            "torch_image_encoder_nchw": figure(2800.0),
            "torch_image_encoder_channels_last": figure(5000.0),
        },
        "torch_format": "torch_image_encoder_channels_last", "torch_per_s": 5000.0,
        "ours_over_torch": 0.9, "ours_over_torch_per_round": [0.85, 0.93],
    }  # fmt: skip
    table = frameworks.format_rows([row])
    assert "| 5000 (4990-5010) (channels_last) | 0.90 (NO; rounds 0.85-0.93) |" in table, table
    row["figures"]["torch_image_encoder_channels_last"]["all_busy"] = True
    assert "| 0.90 (not judged: only busy blocks; rounds" in frameworks.format_rows([row])
    text_row = {
        **row, "model": "dual_encoder text_encoder", "tower": "text_encoder",
        "figures": {"text_encoder": figure(3000.0), "torch_text_encoder": figure(2000.0)},
        "torch_format": "torch_text_encoder", "torch_per_s": 2000.0, "ours_over_torch": 1.5,
        "ours_over_torch_per_round": [1.5],
    }  # fmt: skip
    assert "| 2000 (1990-2010) | 1.50 (yes) |" in frameworks.format_rows([text_row])
    # The goal is judged unrounded: 19.76% is under 20%, though it rounds to it.
    text_row.update(of_peak=0.1976, goal_of_peak=0.2)
    assert "| 19.8% (goal 20%: NOT met) |" in frameworks.format_rows([text_row])
    text_row["of_peak"] = 0.2
    assert "| 20.0% (goal 20%: met) |" in frameworks.format_rows([text_row])
    skipped = {key: value for key, value in row.items() if not key.startswith(("torch", "ours"))}
    assert "| skipped | - |" in frameworks.format_rows([{**skipped, "torch_skipped": "no"}])


def test_the_cpu_model_is_read_from_cpuinfo_and_named_in_the_report(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: avx2\n"
        "processor\t: 1\nmodel name\t: AMD EPYC 9R14\n"
    )
    assert run.cpu_model(cpuinfo) == "AMD EPYC 9R14"
    assert run.cpu_flags(cpuinfo) == ["avx2"]
    assert run.cpu_model(tmp_path / "missing") is None
    cpuinfo.write_text("processor\t: 0\n")  # e.g. some ARM kernels name no model
    assert run.cpu_model(cpuinfo) is None and run.cpu_flags(cpuinfo) is None
    cpuinfo.write_text("flags\t: fpu avx2 avx512f avx512_vnni amx_tile sse4_2\n")
    assert run.cpu_flags(cpuinfo) == ["avx2", "avx512f", "avx512_vnni", "amx_tile"]
    record = {"processor": "x86_64", "cpu_model": "AMD EPYC 9R14"}
    assert run.processor_words(record) == "x86_64, AMD EPYC 9R14"
    assert run.processor_words({"processor": "x86_64"}) == "x86_64"  # an older record
    record["onednn"] = False
    assert run.processor_words(record) == "x86_64, AMD EPYC 9R14, oneDNN kernels off"


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (benchmarks/requirements.txt)")
def test_the_twin_s_towers_are_timed_in_eval_mode_under_inference_mode(monkeypatch):
    import torch

    seen = []

    def recorder(call, calls, batch_size, finish=None):
        first, second = call(), call()
        # Eval mode: the towers' dropout is off, so two calls agree.
        seen.append((first.is_inference(), torch.equal(first, second), tuple(first.shape)))
        return 1.0

    monkeypatch.setattr(frameworks, "examples_per_second", recorder)
    rng = np.random.default_rng(0)
    inputs = {
        "image": rng.uniform(size=(4, 64, 64, 3)).astype("float32"),
        "tokens": rng.integers(1, 20, size=(4, 8)).astype("int32"),
    }
    arguments = {"vocabulary_size": 20}
    subjects, towers = frameworks.torch_inference_subjects(torch, arguments, inputs, 1)
    assert towers == {
        "image_encoder": ["torch_image_encoder_nchw", "torch_image_encoder_channels_last"],
        "text_encoder": ["torch_text_encoder"],
    }
    assert sorted(subjects) == sorted(towers["image_encoder"] + towers["text_encoder"])
    for run_subject in subjects.values():
        run_subject()
    assert seen == [(True, True, (4, 128))] * 3
