"""convert_dataset.py puts every split through the same validation pass as train.py."""

import csv

import numpy as np
import tensorflow as tf

import convert_dataset
from datasets.tfrecords import read_shards


def caption_table(folder) -> str:
    """Four captioned images, one caption empty and one image file missing."""
    rows = [("0.png", "a red square"), ("1.png", ""), ("1.png", "a blue circle")]
    rows += [("2.png", "a green star"), ("gone.png", "never written")]
    for index in range(3):
        pixels = np.full((8, 8, 3), index * 60, np.uint8)
        (folder / f"{index}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    path = folder / "captions.csv"
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["image", "caption"])
        writer.writerows(rows)
    return str(path)


def test_bad_rows_are_reported_and_left_out_of_the_shards(tmp_path, capsys):
    table = caption_table(tmp_path)
    output = tmp_path / "shards"
    flags = ["--task", "captioning", "--dataset", table, "--output", str(output)]
    assert convert_dataset.main(flags) == 0
    printed = capsys.readouterr().out
    assert "empty text: 1 (e.g. " in printed and "captions.csv row 2)" in printed
    assert "missing file: 1 (e.g. " in printed and "gone.png)" in printed
    assert "train: 3 images, 3 texts" in printed
    shards = read_shards(str(output / "train-*.tfrecord"))
    assert sorted(map(sorted, shards.captions)) == [
        ["a blue circle"],
        ["a green star"],
        ["a red square"],
    ]


def test_error_stops_at_the_first_bad_row(tmp_path, capsys):
    table = caption_table(tmp_path)
    flags = ["--task", "captioning", "--dataset", table, "--output", str(tmp_path / "out")]
    assert convert_dataset.main([*flags, "--on-bad-example", "error"]) == 2
    assert "empty text" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
