"""Decode errors in training: only the bad element is dropped, and each epoch names it."""

import keras
import pytest
import tensorflow as tf

from datasets.decode_errors import DecodeErrorLog, ReportDecodeErrors
from datasets.image_header import checked_decode
from tests.datasets.test_image_header import encoded_image

SIDE = 8


def image_files(tmp_path, count: int, bad: dict[int, bytes]) -> list[str]:
    paths = []
    for index in range(count):
        path = tmp_path / f"{index:02d}.png"
        path.write_bytes(bad.get(index, encoded_image("png", size=(SIDE + index, SIDE))))
        paths.append(str(path))
    return paths


def records(paths: list[str]) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices(
        {"index": tf.range(len(paths), dtype=tf.int64), "image_path": paths}
    )


def load(record: dict, max_pixels: int = 10_000) -> tuple:
    image = checked_decode(tf.io.read_file(record["image_path"]), max_pixels=max_pixels)
    return tf.image.resize(image, (SIDE, SIDE)) / 255.0, tf.zeros([1])


class ExamplesSeen(keras.metrics.Metric):
    """How many examples the training step received this epoch."""

    def __init__(self, name="examples_seen", **kwargs):
        super().__init__(name=name, **kwargs)
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.count.assign_add(keras.ops.cast(keras.ops.shape(y_true)[0], "float32"))

    def result(self):
        return self.count


class StepsSeen(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps = []

    def on_epoch_begin(self, epoch, logs=None):
        self.steps.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.steps[-1] += 1


@pytest.mark.filterwarnings(
    "ignore::UserWarning"
)  # Keras: dataset not shuffled by fit, size unknown
@pytest.mark.parametrize("strategy_name", ["default", "mirrored"])
def test_fit_drops_only_the_corrupt_image_and_names_it_every_epoch(tmp_path, strategy_name):
    good_png = encoded_image("png")
    paths = image_files(tmp_path, 8, bad={5: good_png[: len(good_png) // 2]})
    if strategy_name == "mirrored":
        strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    else:
        strategy = tf.distribute.get_strategy()
    with strategy.scope():
        log = DecodeErrorLog()
        inputs = keras.Input((SIDE, SIDE, 3))
        outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(inputs))
        model = keras.Model(inputs, outputs)
        model.compile("sgd", "mse", metrics=[ExamplesSeen()])
    options = tf.data.Options()
    options.deterministic = False
    dataset = records(paths).shuffle(8, seed=1, reshuffle_each_iteration=True)
    dataset = log.decode(dataset, load).batch(3).prefetch(tf.data.AUTOTUNE).with_options(options)
    printed, steps = [], StepsSeen()
    report = ReportDecodeErrors(log, print_fn=printed.append)
    history = model.fit(dataset, epochs=3, verbose=0, callbacks=[steps, report])

    # 7 good images in batches of 3, 3, 1; dropping the bad one's whole batch would leave 2 steps
    assert steps.steps == [3, 3, 3]
    assert history.history["examples_seen"] == [7.0, 7.0, 7.0]
    for epoch in report.epochs:
        assert (epoch["attempted"], epoch["decoded"], epoch["complete"]) == (8, 7, True)
        assert epoch["failures"] == {5: paths[5]}
    assert printed == [
        f"Epoch {epoch}: 1 of 8 training elements could not be read or decoded and were skipped:\n"
        f"  #5: {paths[5]}"
        for epoch in (1, 2, 3)
    ]


def test_each_epoch_counts_afresh_and_a_clean_epoch_prints_nothing(tmp_path):
    paths = image_files(tmp_path, 12, bad={0: b"not an image", 11: b"\x89PNG\r\n\x1a\n"})
    paths.append(str(tmp_path / "deleted.png"))
    log = DecodeErrorLog()
    dataset = log.decode(records(paths), lambda record: load(record, max_pixels=SIDE * (SIDE + 9)))
    batches = dataset.batch(4)
    printed = []
    report = ReportDecodeErrors(log, max_names=2, print_fn=printed.append)
    for epoch in range(2):
        elements = sum(int(tf.shape(images)[0]) for images, _ in batches)
        assert elements == 13 - 4  # the 2 bad images, the missing file and 10x8 over the cap
        report.on_epoch_end(epoch)
    assert report.epochs[1]["failures"] == {
        0: paths[0],
        10: paths[10],
        11: paths[11],
        12: paths[12],
    }
    assert printed[1] == (
        "Epoch 2: 4 of 13 training elements could not be read or decoded and were skipped:\n"
        f"  #0: {paths[0]}\n  #10: {paths[10]}\n  ... and 2 more"
    )
    clean = DecodeErrorLog()
    list(clean.decode(records(paths[1:10]), load))
    ReportDecodeErrors(clean, print_fn=printed.append).on_epoch_end(0)
    assert len(printed) == 2


def test_an_epoch_that_stops_early_does_not_call_unfinished_elements_failed(tmp_path):
    paths = image_files(tmp_path, 10, bad={})
    log = DecodeErrorLog()
    next(iter(log.decode(records(paths), load).batch(2)))
    assert not log.reached_end()
    printed = []
    ReportDecodeErrors(log, print_fn=printed.append).on_epoch_end(0)
    attempted = printed[0].split("(")[1].split()[0]
    assert printed[0].startswith(
        f"Epoch 1 stopped before the end of the training data ({attempted} of 10 elements went "
        "in); "
    )
    assert "failed to decode or were still being decoded" in printed[0]


def test_elements_need_an_index_and_a_name():
    dataset = tf.data.Dataset.from_tensor_slices({"image_path": ["a.png"]})
    with pytest.raises(ValueError, match="need the field 'index'"):
        DecodeErrorLog().decode(dataset, load)
