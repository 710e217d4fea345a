import json
import os

import numpy as np
import pytest

from evaluation.report import format_metrics_table, write_metrics_json

METRICS = {
    "text_to_image_r@1": 0.41234,
    "text_to_image_r@10": 0.9,
    "image_to_text_r@1": np.float32(0.5),
}
BASELINE = {"text_to_image_r@1": 0.0002, "text_to_image_r@10": 0.002, "image_to_text_r@1": 0.001}


def test_table_has_every_metric_both_columns_and_four_decimals():
    table = format_metrics_table(METRICS, BASELINE)
    lines = table.splitlines()

    assert [cell.strip() for cell in lines[0].strip("|").split("|")] == [
        "metric",
        "model",
        "baseline",
    ]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    assert rows == [
        ["text_to_image_r@1", "0.4123", "0.0002"],
        ["text_to_image_r@10", "0.9000", "0.0020"],
        ["image_to_text_r@1", "0.5000", "0.0010"],
    ]


def test_table_is_aligned_markdown():
    lines = format_metrics_table(METRICS, BASELINE).splitlines()

    assert len({len(line) for line in lines}) == 1
    assert set(lines[1]) <= {"|", ":", "-"}
    assert lines[1].count("|") == 4
    pipes = [[index for index, char in enumerate(line) if char == "|"] for line in lines]
    assert all(positions == pipes[0] for positions in pipes)


def test_table_without_baseline_or_with_partial_baseline_shows_dashes():
    without = format_metrics_table({"bleu_4": 0.3, "cider_d": 1.25})
    partial = format_metrics_table({"bleu_4": 0.3, "cider_d": 1.25}, {"cider_d": 0.1})

    assert [line.split("|")[3].strip() for line in without.splitlines()[2:]] == ["-", "-"]
    assert [line.split("|")[3].strip() for line in partial.splitlines()[2:]] == ["-", "0.1000"]


def test_table_title_comes_first():
    table = format_metrics_table({"cider_d": 1.0}, title="captioning / coco / test")
    assert table.splitlines()[:3] == [
        "captioning / coco / test",
        "",
        "| metric  |  model | baseline |",
    ]
    assert not table.endswith("\n")


@pytest.mark.parametrize(
    ("metrics", "baseline", "message"),
    [
        ({}, None, "`metrics` is empty"),
        ({"bleu_4": "high"}, None, r"`metrics\['bleu_4'\]` must be a real number"),
        ({"bleu_4": 0.1}, {"bleu_4": 0.1, "cider": 0.2}, r"\['cider'\] that `metrics` does not"),
        ({"bleu_4": 0.1}, {"bleu_4": None}, r"`baseline\['bleu_4'\]`"),
    ],
)
def test_table_bad_inputs_raise(metrics, baseline, message):
    with pytest.raises(ValueError, match=message):
        format_metrics_table(metrics, baseline)


def test_json_round_trips(tmp_path):
    path = tmp_path / "reports" / "clip_tiny" / "metrics.json"
    extra = {"dataset": "coco_5k", "num_images": np.int64(5000), "ks": np.array([1, 5, 10])}

    written = write_metrics_json(
        path,
        model="clip_tiny",
        task="retrieval",
        split="test",
        metrics=METRICS,
        baseline=BASELINE,
        extra=extra,
    )

    assert written == path
    text = path.read_text(encoding="utf-8")
    assert text.startswith('{\n  "model": "clip_tiny"')
    assert text.endswith("}\n")
    assert json.loads(text) == {
        "model": "clip_tiny",
        "task": "retrieval",
        "split": "test",
        "metrics": {key: float(value) for key, value in METRICS.items()},
        "baseline": BASELINE,
        "extra": {"dataset": "coco_5k", "num_images": 5000, "ks": [1, 5, 10]},
    }
    assert list(json.loads(text)["metrics"]) == list(METRICS)
    assert os.listdir(path.parent) == ["metrics.json"]


def test_json_without_baseline_or_extra(tmp_path):
    path = write_metrics_json(
        str(tmp_path / "m.json"),
        model="cap",
        task="captioning",
        split="val",
        metrics={"cider_d": 0.5},
        baseline=None,
    )
    assert json.loads(path.read_text())["baseline"] is None
    assert json.loads(path.read_text())["extra"] == {}


def test_json_overwrite_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    write_metrics_json(path, model="a", task="t", split="s", metrics={"m": 1.0}, baseline=None)
    before = path.read_text()

    def failing_replace(source, destination):
        raise OSError("disk unplugged")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk unplugged"):
        write_metrics_json(path, model="b", task="t", split="s", metrics={"m": 2.0}, baseline=None)

    assert path.read_text() == before
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_json_replaces_an_existing_report(tmp_path):
    path = tmp_path / "metrics.json"
    write_metrics_json(path, model="a", task="t", split="s", metrics={"m": 1.0}, baseline=None)
    write_metrics_json(path, model="b", task="t", split="s", metrics={"m": 2.0}, baseline=None)
    assert json.loads(path.read_text())["metrics"] == {"m": 2.0}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model": ""}, "`model` must be a non-empty string"),
        ({"metrics": {"m": float("nan")}}, r"`metrics\['m'\]` is nan"),
        ({"baseline": {"m": float("inf")}}, r"`baseline\['m'\]` is inf"),
        ({"extra": {"when": object()}}, "`extra` holds a object"),
    ],
)
def test_json_bad_inputs_raise_and_write_nothing(tmp_path, overrides, message):
    arguments = dict(model="a", task="t", split="s", metrics={"m": 1.0}, baseline=None)
    arguments.update(overrides)
    with pytest.raises(ValueError, match=message):
        write_metrics_json(tmp_path / "metrics.json", **arguments)
    assert os.listdir(tmp_path) == []
