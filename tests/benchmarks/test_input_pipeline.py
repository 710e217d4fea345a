"""The input-pipeline benchmark runs end to end and judges its goals from its own figures."""

import json

import pytest

from benchmarks import input_pipeline


@pytest.mark.slow
def test_a_tiny_run_measures_every_figure_for_files_and_shards(tmp_path, capsys):
    output = tmp_path / "rows.json"
    flags = ["--sizes", "32", "--images", "64", "--steps", "3", "--rounds", "1"]
    flags += ["--json", str(output)]
    assert input_pipeline.main(flags) == 0
    rows = json.loads(output.read_text())
    assert [row["source"] for row in rows] == ["JPEG files", "TFRecords"]
    for row in rows:
        rates = [value for key, value in row.items() if key.endswith("_per_s")]
        samples = rates.pop(rates.index(row["samples_per_s"]))
        assert len(rates) == 6 and all(rate > 0 for rate in rates)
        assert row["cache_auto_caches"] is True  # a few MB
        assert sorted(samples) == ["auto", "live", "ours", "raw", "tensors"]
        assert all(len(values) == 1 for values in samples.values())
        assert sorted(row["others_cpu_share"]) == sorted(samples)  # the load of each block
        for shares in row["others_cpu_share"].values():
            assert len(shares) == 1 and (shares[0] is None or 0.0 <= shares[0] <= 1.0)
        assert all(kept == 1 for kept in row["blocks_kept"].values())  # all busy: all kept
        assert row["pipeline_over_training"] == pytest.approx(
            row["pipeline_per_s"] / row["fit_live_per_s"]
        )
    table = capsys.readouterr().out
    assert table.count("| 32 px |") == 2


def test_a_goal_is_met_only_at_or_above_its_threshold():
    row = {key: goal for key, goal in input_pipeline.GOALS.items()}
    assert all(input_pipeline.verdict(row, key) == "yes" for key in row)
    row["live_over_tensors_fit"] = 0.89
    assert input_pipeline.verdict(row, "live_over_tensors_fit") == "NO"
