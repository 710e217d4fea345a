"""The framework benchmark: PyTorch twins train, and one tiny run.py round writes its report.

torch is the benchmarks' own requirement (benchmarks/requirements.txt); without it the
twin tests are skipped and the run reports the torch part as skipped, with the reason.
"""

import importlib.util
import json

import numpy as np
import pytest

from benchmarks import frameworks, run

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
        # One round: its one ratio is the ratio of the medians.
        assert training["ours_over_torch_per_round"] == [pytest.approx(training["ours_over_torch"])]
    else:
        assert "torch is not installed" in training["torch_skipped"]
        assert "torch_per_s" not in training
    assert [row["tower"] for row in inference] == ["image_encoder", "text_encoder"]
    assert all(row["per_s"] > 0 and row["flops_per_example"] > 0 for row in inference)
    report = (tmp_path / "benchmarks.md").read_text()
    assert "| `vqa` (training, batch 8) |" in report and "image_encoder (inference" in report
    chart = tmp_path / "benchmarks.png"
    if HAS_MATPLOTLIB:
        assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and results["chart_skipped"] is None
    else:
        assert not chart.exists() and "matplotlib" in results["chart_skipped"]
