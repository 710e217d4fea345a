"""The serving benchmark runs end to end on one export and reports every figure."""

import json

import pytest

from benchmarks import serving


@pytest.mark.slow
def test_a_tiny_run_times_the_signature_the_model_and_decoding(tmp_path, capsys):
    output = tmp_path / "rows.json"
    flags = ["--models", "image_only", "--rounds", "1", "--repeats", "2", "--images", "32"]
    assert serving.main([*flags, "--json", str(output)]) == 0
    (row,) = json.loads(output.read_text())
    assert row["model"] == "image_only" and row["p99_ms_batch_1"] >= row["p50_ms_batch_1"] > 0
    separate = 1 / (1 / row["in_process_model_per_s_batch_32"] + 1 / row["decode_per_s_batch_32"])
    assert row["model_plus_decode_per_s"] == pytest.approx(separate)
    assert row["signature_over_separate"] == pytest.approx(
        row["signature_per_s_batch_32"] / separate
    )
    assert sorted(row["others_cpu_share"]) == sorted(row["blocks_kept"])
    assert all(len(shares) == 1 for shares in row["others_cpu_share"].values())
    assert all(kept == 1 for kept in row["blocks_kept"].values())
    assert "| `image_only` |" in capsys.readouterr().out
