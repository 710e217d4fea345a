"""Image headers read before decoding: in Python over files, and in-graph before the decoder."""

import io
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from datasets.image_header import (
    CORRUPT,
    TRUNCATED,
    UNSUPPORTED,
    ImageFileError,
    ImageHeader,
    checked_decode,
    image_height_width,
    image_pixels,
    read_image_header,
)
from datasets.images import decode_image

WIDTH, HEIGHT = 37, 21  # not square, so a swapped width and height shows
FORMATS = ["jpeg", "png", "gif", "bmp", "webp", "webp-lossless"]


def encoded_image(image_format: str, size=(WIDTH, HEIGHT), mode="RGB", **options) -> bytes:
    """A valid image: JPEG and PNG written by TensorFlow, the others by Pillow."""
    pixels = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    if image_format == "jpeg" and not options:
        return tf.io.encode_jpeg(pixels).numpy()
    if image_format == "png" and mode == "RGB":
        return tf.io.encode_png(pixels).numpy()
    if image_format == "webp-lossless":
        image_format, options = "webp", {"lossless": True, **options}
    image = Image.fromarray(pixels).convert(mode)
    if mode == "RGBA":
        image.putalpha(128)  # translucent, so that WebP keeps the alpha (VP8X)
    buffer = io.BytesIO()
    image.save(buffer, format=image_format.upper(), **options)
    return buffer.getvalue()


def bomb_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A valid 1-bit grayscale PNG: ~50 KB of bytes, width * height * 3 bytes once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte, then one bit per pixel
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("image_format", FORMATS)
def test_python_and_in_graph_headers_give_the_decoded_size(tmp_path, image_format):
    data = encoded_image(image_format)
    header = read_image_header(write(tmp_path, "image", data), check_complete=True)
    assert header == ImageHeader(image_format.split("-")[0], WIDTH, HEIGHT)
    assert image_height_width(tf.constant(data)).numpy().tolist() == [HEIGHT, WIDTH]
    assert int(image_pixels(tf.constant(data))) == WIDTH * HEIGHT
    decoded = checked_decode(tf.constant(data))
    assert decoded.shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(decoded, decode_image(tf.constant(data)))


@pytest.mark.parametrize(
    "image_format, mode, options, first_chunk",
    [
        ("jpeg", "RGB", {"progressive": True}, None),
        ("jpeg", "RGB", {"exif": b"Exif\x00\x00" + bytes(30_000)}, None),
        ("webp", "RGB", {"lossless": False}, b"VP8 "),
        ("webp", "RGB", {"lossless": True}, b"VP8L"),
        ("webp", "RGBA", {"lossless": False}, b"VP8X"),
    ],
)
def test_jpeg_segments_and_every_webp_chunk_are_read(
    tmp_path, image_format, mode, options, first_chunk
):
    data = encoded_image(image_format, size=(300, 17), mode=mode, **options)
    if first_chunk:
        assert data[12:16] == first_chunk
    assert read_image_header(write(tmp_path, "image", data), check_complete=True)[1:] == (300, 17)
    assert image_height_width(tf.constant(data)).numpy().tolist() == [17, 300]


def test_bottom_up_and_top_down_bmp(tmp_path):
    data = bytearray(encoded_image("bmp"))
    data[22:26] = struct.pack("<i", -HEIGHT)
    assert read_image_header(write(tmp_path, "top_down.bmp", bytes(data))).height == HEIGHT
    assert image_height_width(tf.constant(bytes(data))).numpy().tolist() == [HEIGHT, WIDTH]


@pytest.mark.parametrize(
    "data, looks_like",
    [
        (b"hello, this is not an image\n", "text ('hello, this is not"),
        (b"", "an empty file"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "PDF"),
        (b"\x00\x01\x02\x03\xfe\xfd\xfc\xfb\x10\x11", "bytes 00 01 02 03 fe fd fc fb"),
        (b"\xff\x0a\xfa\x12", "JPEG XL"),
    ],
)
def test_an_unsupported_file_is_named_with_what_it_looks_like(tmp_path, data, looks_like):
    path = write(tmp_path, "photo.jpg", data)
    with pytest.raises(ImageFileError) as error:
        read_image_header(path)
    assert error.value.reason == UNSUPPORTED and isinstance(error.value, ValueError)
    assert path in str(error.value) and looks_like in str(error.value)


def test_tiff_is_named(tmp_path):
    path = write(tmp_path, "scan.png", encoded_image("tiff"))
    with pytest.raises(ImageFileError, match=r"scan\.png: unsupported format: .*TIFF"):
        read_image_header(path)


@pytest.mark.parametrize(
    "image_format, keep, reason, words",
    [
        ("png", 20, TRUNCATED, "png header needs 24 bytes, the file has 20"),
        ("gif", 8, TRUNCATED, "gif header needs 10 bytes"),
        ("bmp", 20, TRUNCATED, "bmp header needs 26 bytes"),
        ("webp", 26, TRUNCATED, "webp header needs 30 bytes"),
        ("jpeg", 100, TRUNCATED, "JPEG ends"),
    ],
)
def test_a_header_cut_short_is_reported(tmp_path, image_format, keep, reason, words):
    path = write(tmp_path, "cut", encoded_image(image_format)[:keep])
    with pytest.raises(ImageFileError, match=words) as error:
        read_image_header(path)
    assert error.value.reason == reason and error.value.path == path


def test_corrupt_headers_are_reported(tmp_path):
    png = bytearray(encoded_image("png"))
    png[12:16] = b"IDAT"
    zero_width = bytearray(encoded_image("gif"))
    zero_width[6:8] = b"\x00\x00"
    for data, words in [(png, "not IHDR"), (zero_width, "gives 0x21 pixels")]:
        with pytest.raises(ImageFileError, match=words) as error:
            read_image_header(write(tmp_path, "bad", bytes(data)))
        assert error.value.reason == CORRUPT


@pytest.mark.parametrize("image_format", FORMATS)
def test_the_tail_check_finds_a_truncated_file(tmp_path, image_format):
    data = encoded_image(image_format, size=(200, 150))
    path = write(tmp_path, "cut", data[: len(data) * 3 // 4])
    assert read_image_header(path)[1:] == (200, 150)  # the header alone cannot tell
    with pytest.raises(ImageFileError) as error:
        read_image_header(path, check_complete=True)
    assert error.value.reason == TRUNCATED and path in str(error.value)


def test_jpeg_zero_padding_after_the_end_marker_is_allowed(tmp_path):
    path = write(tmp_path, "padded.jpg", encoded_image("jpeg") + bytes(1000))
    assert read_image_header(path, check_complete=True) == ImageHeader("jpeg", WIDTH, HEIGHT)


def test_a_missing_file_raises_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_image_header(tmp_path / "missing.png")


def test_over_the_cap_is_refused_eagerly_in_functions_and_in_tf_data():
    data = tf.constant(encoded_image("png"))
    message = rf"image_bytes is {WIDTH}x{HEIGHT} pixels \(width x height\).*max_pixels=100"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        checked_decode(data, max_pixels=100)
    in_function = tf.function(lambda image_bytes: checked_decode(image_bytes, max_pixels=100))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        in_function(data)
    dataset = tf.data.Dataset.from_tensors(data).map(lambda one: checked_decode(one, 100))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        list(dataset)
    assert checked_decode(data, max_pixels=WIDTH * HEIGHT).shape == (HEIGHT, WIDTH, 3)


def test_unknown_formats_reach_the_decoder_and_jpeg_xl_is_refused():
    assert int(image_pixels(tf.constant(b"not an image at all"))) == 0
    with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown image file format"):
        checked_decode(tf.constant(b"not an image at all"))
    with pytest.raises(tf.errors.InvalidArgumentError, match="JPEG XL"):
        checked_decode(tf.constant(b"\xff\x0a\xfa\x7f" + bytes(40)))


def test_the_bomb_builder_writes_a_valid_png():
    image = decode_image(tf.constant(bomb_png(70, 9))).numpy()
    assert image.shape == (9, 70, 3) and image.max() == 0


def test_a_bomb_is_refused_without_decoding_in_a_saved_model_and_eagerly(tmp_path):
    """Peak RSS (VmHWM) of a fresh process grows far less than the 1.2 GB the decode needs."""

    class Decoder(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
        def serve(self, image_bytes):
            return {"shape": tf.shape(checked_decode(image_bytes))}

    tf.saved_model.save(Decoder(), str(tmp_path / "model"))
    (tmp_path / "bomb.png").write_bytes(bomb_png())
    (tmp_path / "small.png").write_bytes(encoded_image("png"))
    script = textwrap.dedent(
        """
        import pathlib, sys
        import tensorflow as tf

        def peak_kib():
            status = pathlib.Path("/proc/self/status").read_text()
            return int(next(line for line in status.splitlines() if line.startswith("VmHWM"))
                       .split()[1])

        def refused(decode):
            before = peak_kib()
            try:
                decode(tf.constant(bomb))
            except tf.errors.InvalidArgumentError as error:
                print("refused", "20000x20000" in error.message, peak_kib() - before)
            else:
                print("decoded", "-", peak_kib() - before)

        folder = pathlib.Path(sys.argv[1])
        bomb, small = (folder / "bomb.png").read_bytes(), (folder / "small.png").read_bytes()
        serve = tf.saved_model.load(str(folder / "model")).signatures["serving_default"]
        serve(tf.constant(small))
        refused(lambda image_bytes: serve(image_bytes))
        print("project code loaded:", any(name.startswith("datasets") for name in sys.modules))
        from datasets.image_header import checked_decode
        checked_decode(tf.constant(small))
        refused(checked_decode)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[1] == "project code loaded: False", result.stdout
    for line in (lines[0], lines[2]):
        word, names_size, growth_kib = line.split()
        assert word == "refused" and names_size == "True", result.stdout
        assert int(growth_kib) < 100 * 1024, f"peak RSS grew by {growth_kib} KiB: {result.stdout}"


def test_the_shared_preprocessing_refuses_a_bomb_for_training_and_serving():
    from datasets.images import preprocess_image_batch

    with pytest.raises(tf.errors.InvalidArgumentError, match="over the cap"):
        preprocess_image_batch(tf.constant([encoded_image("PNG"), bomb_png()]), 8)
    assert preprocess_image_batch(tf.constant([encoded_image("PNG")]), 8).shape == (1, 8, 8, 3)
