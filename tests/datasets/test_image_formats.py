"""Every claimed image format and mode decodes to RGB uint8 [H, W, 3], eagerly and in graphs.

The reference is Pillow's decode of the same bytes, converted to RGB, which drops alpha
(it does not composite over a background) and takes the first frame of an animation.
"""

import io
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from datasets.image_header import checked_decode
from datasets.images import decode_image

WIDTH, HEIGHT = 37, 21  # not square, so a swapped width and height shows
RED, BLUE = (255, 0, 0), (0, 0, 255)
JPEG_LEVELS = 8  # TensorFlow decodes JPEG with the fast integer DCT, Pillow with the accurate one
LOSSY_WEBP_LEVELS = 2  # TensorFlow and Pillow each bundle their own libwebp

serving_decode = tf.function(decode_image, input_signature=[tf.TensorSpec([], tf.string)])


def noise(channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, channels), dtype=np.uint8)


def gradient() -> Image.Image:
    """A smooth image, so that lossy codecs stay within a few levels of the source."""
    x, y = np.meshgrid(np.linspace(0, 255, WIDTH), np.linspace(0, 255, HEIGHT))
    return Image.fromarray(np.stack([x, y, 255 - x], -1).astype(np.uint8))


def rgba() -> Image.Image:
    """Noise with noisy alpha, fully transparent (0) and fully opaque (255) included."""
    pixels = noise(4)
    pixels[0, :, 3], pixels[1, :, 3] = 0, 255
    return Image.fromarray(pixels, "RGBA")


def palette() -> Image.Image:
    return Image.fromarray(noise()).convert("P", palette=Image.Palette.ADAPTIVE, colors=200)


def animation(mode: str = "RGB") -> list[Image.Image]:
    """A first frame of four stripes (few colours, so GIF keeps them exactly), then plain blue."""
    stripes = np.array([RED, (0, 255, 0), (255, 255, 255), (40, 40, 40)], np.uint8)
    first = stripes[np.arange(WIDTH) * len(stripes) // WIDTH][np.newaxis].repeat(HEIGHT, 0)
    frames = [Image.fromarray(first), Image.new("RGB", (WIDTH, HEIGHT), BLUE)]
    if mode == "RGBA":
        frames = [frame.convert("RGBA") for frame in frames]
        frames[0].putalpha(100)
    return frames


def save(image: Image.Image | list[Image.Image], image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    if isinstance(image, list):
        image, options = image[0], {"save_all": True, "append_images": image[1:], **options}
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def bmp_bit_fields(pixels: np.ndarray, masks: tuple[int, int, int]) -> bytes:
    """A bottom-up 32-bit BI_BITFIELDS BMP: `pixels` [H, W, 4] are its raw pixel bytes."""
    height, width = pixels.shape[:2]
    data = pixels[::-1].tobytes()
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 32, 3, len(data), 2835, 2835, 0, 0)
    offset = 14 + len(info) + 12
    return (
        b"BM"
        + struct.pack("<IHHI", offset + len(data), 0, 0, offset)
        + info
        + (struct.pack("<III", *masks) + data)
    )


def patched(data: bytes, offset: int, packed: bytes) -> bytes:
    return data[:offset] + packed + data[offset + len(packed) :]


def pillow_rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


FORMATS = {
    "jpeg": (lambda: save(gradient(), "JPEG", quality=95), JPEG_LEVELS),
    "jpeg-progressive": (
        lambda: save(gradient(), "JPEG", quality=95, progressive=True),
        JPEG_LEVELS,
    ),
    "jpeg-gray": (lambda: save(gradient().convert("L"), "JPEG", quality=95), JPEG_LEVELS),
    "jpeg-cmyk": (lambda: save(gradient().convert("CMYK"), "JPEG", quality=95), JPEG_LEVELS),
    "png": (lambda: save(Image.fromarray(noise()), "PNG"), 0),
    "png-rgba": (lambda: save(rgba(), "PNG"), 0),
    "png-gray": (lambda: save(Image.fromarray(noise(1)[..., 0]), "PNG"), 0),
    "png-gray-alpha": (lambda: save(rgba().convert("LA"), "PNG"), 0),
    "png-palette": (lambda: save(palette(), "PNG"), 0),
    "png-palette-transparency": (lambda: save(palette(), "PNG", transparency=3), 0),
    "png-1-bit": (lambda: save(Image.fromarray(noise()).convert("1"), "PNG"), 0),
    "gif": (lambda: save(Image.fromarray(noise()), "GIF"), 0),
    "gif-animated": (lambda: save(animation(), "GIF"), 0),
    "bmp": (lambda: save(Image.fromarray(noise()), "BMP"), 0),
    "bmp-32-bit": (lambda: save(rgba(), "BMP"), 0),
    "bmp-gray": (lambda: save(Image.fromarray(noise(1)[..., 0]), "BMP"), 0),
    "bmp-palette": (lambda: save(palette(), "BMP"), 0),
    "bmp-palette-top-down": (
        lambda: patched(save(palette(), "BMP"), 22, struct.pack("<i", -HEIGHT)),
        0,
    ),
    "bmp-bit-fields": (lambda: bmp_bit_fields(noise(4), (0xFF0000, 0xFF00, 0xFF)), 0),
    "webp": (lambda: save(gradient(), "WEBP", quality=95), LOSSY_WEBP_LEVELS),
    "webp-lossless": (lambda: save(Image.fromarray(noise()), "WEBP", lossless=True), 0),
    "webp-gray": (lambda: save(Image.fromarray(noise(1)[..., 0]), "WEBP", lossless=True), 0),
    "webp-rgba": (lambda: save(rgba(), "WEBP", quality=95), LOSSY_WEBP_LEVELS),
    "webp-rgba-lossless": (lambda: save(rgba(), "WEBP", lossless=True, exact=True), 0),
    "webp-with-exif": (
        lambda: save(gradient(), "WEBP", quality=95, exif=b"Exif\x00\x00" + bytes(20)),
        LOSSY_WEBP_LEVELS,
    ),
    "webp-animated": (lambda: save(animation(), "WEBP", lossless=True), 0),
    "webp-animated-lossy": (lambda: save(animation(), "WEBP", quality=95), LOSSY_WEBP_LEVELS),
    "webp-animated-rgba": (lambda: save(animation("RGBA"), "WEBP", lossless=True), 0),
}


def decode_in_dataset(data: bytes) -> tf.Tensor:
    dataset = tf.data.Dataset.from_tensors(tf.constant(data)).map(decode_image)
    assert dataset.element_spec.shape.as_list() == [None, None, 3]
    return next(iter(dataset))


DECODERS = {
    "eager": lambda data: decode_image(tf.constant(data)),
    "serving-function": lambda data: serving_decode(tf.constant(data)),
    "tf.data": decode_in_dataset,
    "checked_decode": lambda data: checked_decode(tf.constant(data)),
}


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("name", FORMATS)
def test_every_format_decodes_to_the_rgb_that_pillow_gives(name, decoder):
    build, levels = FORMATS[name]
    data = build()
    image = DECODERS[decoder](data).numpy()
    assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
    difference = np.abs(image.astype(int) - pillow_rgb(data))
    assert difference.max() <= levels, f"{name}: up to {difference.max()} levels from Pillow"


def test_the_serving_function_has_a_static_rgb_shape():
    output = serving_decode.get_concrete_function().structured_outputs
    assert output.shape.as_list() == [None, None, 3] and output.dtype == tf.uint8


@pytest.mark.parametrize("name", ["jpeg-gray", "png-gray", "bmp-gray", "webp-gray"])
def test_grayscale_repeats_the_gray_value_in_every_channel(name):
    image = decode_image(tf.constant(FORMATS[name][0]())).numpy()
    np.testing.assert_array_equal(image[..., 0], image[..., 1])
    np.testing.assert_array_equal(image[..., 0], image[..., 2])


@pytest.mark.parametrize(
    "image_format, options",
    [("PNG", {}), ("WEBP", {"lossless": True, "exact": True}), ("BMP", {})],
)
def test_alpha_is_dropped_not_composited(image_format, options):
    """Transparent and translucent pixels keep the colour stored under them, unblended."""
    source = rgba()
    image = decode_image(tf.constant(save(source, image_format, **options))).numpy()
    np.testing.assert_array_equal(image, np.asarray(source)[..., :3])


def test_sixteen_bit_png_is_scaled_to_eight_bits():
    """Pillow's I;16 to RGB conversion clips instead of scaling, so the source is the reference."""
    levels = noise(1)[..., 0]
    data = save(Image.fromarray(levels.astype(np.uint16) * 257), "PNG")
    image = serving_decode(tf.constant(data)).numpy()
    assert image.shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(image, np.repeat(levels[..., np.newaxis], 3, -1))


@pytest.mark.parametrize(
    "image_format, mode, options, mean_levels",
    [
        ("GIF", "RGB", {}, 0),
        ("WEBP", "RGB", {"lossless": True}, 0),
        ("WEBP", "RGB", {"quality": 95}, 8),
        ("WEBP", "RGBA", {"lossless": True}, 0),
    ],
)
def test_an_animation_gives_its_first_frame(image_format, mode, options, mean_levels):
    frames = animation(mode)
    data = save(frames, image_format, **options)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    if image_format == "WEBP":
        assert data[12:16] == b"VP8X" and data[20] & 0x02, "not an animated WebP"
    first = np.asarray(frames[0])[..., :3].astype(int)
    for decode in (decode_image, serving_decode):
        image = decode(tf.constant(data)).numpy().astype(int)
        assert image.shape == (HEIGHT, WIDTH, 3)
        assert np.abs(image - first).mean() <= mean_levels
        if not mean_levels:
            np.testing.assert_array_equal(image, first)
        assert np.abs(image - BLUE).mean() > 50, "decoded the second frame"


def test_a_large_animated_webp_decodes_in_a_fresh_process(tmp_path):
    """`channels=0` alone overflows the output buffer on this file: a crash shows up here."""
    frames = [Image.new("RGB", (300, 200), RED), Image.new("RGB", (300, 200), BLUE)]
    (tmp_path / "animated.webp").write_bytes(save(frames, "WEBP", quality=90))
    script = textwrap.dedent(
        """
        import pathlib, sys
        import tensorflow as tf
        from datasets.images import decode_image

        data = tf.constant(pathlib.Path(sys.argv[1]).read_bytes())
        for _ in range(5):
            image = decode_image(data)
        print(*image.shape, *tf.reduce_mean(tf.cast(image, tf.float32), [0, 1]).numpy().round())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "animated.webp")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    height, width, channels, *mean = [float(word) for word in result.stdout.split()]
    assert (height, width, channels) == (200, 300, 3), result.stdout
    np.testing.assert_allclose(mean, RED, atol=3, err_msg=result.stdout)


def eight_bit_bmp() -> bytes:
    return save(palette(), "BMP")


@pytest.mark.parametrize(
    "build, words",
    [
        (lambda: save(Image.fromarray(noise()).convert("1"), "BMP"), "1 bits per pixel"),
        (lambda: patched(eight_bit_bmp(), 28, struct.pack("<H", 4)), "4 bits per pixel"),
        (lambda: patched(eight_bit_bmp(), 28, struct.pack("<H", 16)), "16 bits per pixel"),
        (lambda: patched(eight_bit_bmp(), 30, struct.pack("<I", 1)), "compression 1"),
        (lambda: patched(eight_bit_bmp(), 14, struct.pack("<I", 12)), "a 12-byte info header"),
        (lambda: bmp_bit_fields(noise(4), (0xFF, 0xFF00, 0xFF0000)), "compression 3"),
    ],
)
def test_a_bmp_that_tensorflow_misreads_is_refused_by_name(build, words):
    data = tf.constant(build())
    message = rf"image_bytes is a BMP with .*{words}.*convert it to PNG"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        decode_image(data)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        serving_decode(data)


def test_bytes_that_are_no_image_keep_the_decoders_error():
    for data in (b"", b"RIFF", b"RIFF\x08\x00\x00\x00WEBPVP8X", b"not an image at all"):
        with pytest.raises(tf.errors.InvalidArgumentError):
            serving_decode(tf.constant(data))


def test_an_export_decodes_every_format_in_a_process_without_project_code(tmp_path):
    class Decoder(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
        def serve(self, image_bytes):
            return {"image": decode_image(image_bytes)}

    tf.saved_model.save(Decoder(), str(tmp_path / "model"))
    folder = tmp_path / "images"
    folder.mkdir()
    for name, (build, _) in FORMATS.items():
        (folder / name).write_bytes(build())
    script = textwrap.dedent(
        """
        import pathlib, sys
        import numpy as np
        import tensorflow as tf

        folder = pathlib.Path(sys.argv[1])
        serve = tf.saved_model.load(str(folder / "model")).signatures["serving_default"]
        images = {
            path.name: serve(tf.constant(path.read_bytes()))["image"].numpy()
            for path in sorted((folder / "images").iterdir())
        }
        np.savez(folder / "decoded.npz", **images)
        print("project code loaded:", any(name.startswith("datasets") for name in sys.modules))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "project code loaded: False", result.stdout
    decoded = np.load(tmp_path / "decoded.npz")
    assert sorted(decoded.files) == sorted(FORMATS)
    for name in FORMATS:
        expected = decode_image(tf.constant((folder / name).read_bytes())).numpy()
        np.testing.assert_array_equal(decoded[name], expected, err_msg=name)
