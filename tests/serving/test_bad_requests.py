"""No request can crash a loaded export or stop it serving: a corpus of bad requests.

One subprocess that imports only TensorFlow loads every export and sends each of
its signatures every request of the corpus that fits its inputs, then one good
request after each. Requests a server must refuse fail with a message that says
what was wrong: inside the graph with `InvalidArgumentError` (the signature's
own checks, serving/guards.py, or the decoder's error), at the signature's Python
boundary with `InvalidArgumentError` for a tensor of the wrong dtype and
`TypeError` for a missing or unexpected key or a value that is not a string.
"""

import io
import json
import struct
import subprocess
import sys
import textwrap
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from serving.guards import CHARACTERS_PER_TOKEN, MAX_IMAGE_BYTES, texts_from_strings

INVALID = "InvalidArgumentError"
LARGE_SIDE = 20000
MEGABYTE = 1_000_000
OVER_CAP_BYTES = MAX_IMAGE_BYTES + MEGABYTE
NOT_AN_IMAGE = "image_bytes[0] is not a JPEG, PNG, GIF, BMP or WebP image"
OVER_PIXEL_CAP = "over the cap of max_pixels="
RANK = "is not compatible with expected shape [?]"


@dataclass(frozen=True)
class Request:
    """One request of the corpus and what the loaded signature must do with it.

    Attributes:
        name: what the request is, in words.
        inputs: per role ("image" for image_bytes, "text" for the text input) a value
            spec: ("batch", [payload, ...]), ("scalar", payload), ("matrix", [payload,
            ...]), ("int32",), ("float32",), ("python_ints",) or ("missing",). A role
            left out gets good payloads, as many as the other role's batch (else one);
            a request is sent to every signature that has all of its roles.
        outcome: "ok", "InvalidArgumentError" or "TypeError".
        messages: substrings the error message must hold; "{text}" stands for the
            signature's text input name.
        extra_key: also send an input the signature does not declare.
    """

    name: str
    inputs: dict = field(default_factory=dict)
    outcome: str = INVALID
    messages: tuple[str, ...] = ()
    extra_key: bool = False


def images(*names: str) -> dict:
    return {"image": ("batch", list(names))}


def texts(*names: str) -> dict:
    return {"text": ("batch", list(names))}


REQUESTS = (
    Request("scalar image_bytes", {"image": ("scalar", "jpeg")}, messages=("image_bytes []", RANK)),
    Request(
        "rank-2 image_bytes",
        {"image": ("matrix", ["jpeg", "jpeg"])},
        messages=("image_bytes [1,2]", RANK),
    ),
    Request("scalar text", {"text": ("scalar", "text")}, messages=("{text} []", RANK)),
    Request("rank-2 text", {"text": ("matrix", ["text", "text"])}, messages=("{text} [1,2]", RANK)),
    Request(
        "int32 tensor as image_bytes",
        {"image": ("int32",)},
        messages=("expected to be a string tensor but is a int32 tensor",),
    ),
    Request(
        "float32 tensor as text",
        {"text": ("float32",)},
        messages=("expected to be a string tensor but is a float tensor",),
    ),
    Request(
        "Python ints as image_bytes",
        {"image": ("python_ints",)},
        "TypeError",
        ("Cannot convert [1] to EagerTensor of dtype string",),
    ),
    Request(
        "missing image_bytes",
        {"image": ("missing",)},
        "TypeError",
        ("missing a required argument: 'image_bytes'",),
    ),
    Request(
        "missing text",
        {"text": ("missing",)},
        "TypeError",
        ("missing a required argument: '{text}'",),
    ),
    Request(
        "undeclared extra key",
        outcome="TypeError",
        messages=("unexpected keyword argument 'unexpected'",),
        extra_key=True,
    ),
    Request(
        "2 images, 1 text",
        {**images("jpeg", "jpeg"), **texts("text")},
        messages=("image_bytes holds 2 and {text} 1 elements", "never broadcast"),
    ),
    Request(
        "1 image, 2 texts",
        {**images("jpeg"), **texts("text", "text")},
        messages=("image_bytes holds 1 and {text} 2 elements", "never broadcast"),
    ),
    Request(
        "0 images, 1 text",
        {**images(), **texts("text")},
        messages=("image_bytes holds 0 and {text} 1 elements",),
    ),
    Request("empty bytes", images("empty"), messages=("image_bytes[0] is empty (0 bytes)",)),
    Request(
        "empty bytes after a good image",
        images("jpeg", "empty"),
        messages=("image_bytes[1] is empty (0 bytes)",),
    ),
    Request(
        "truncated JPEG",
        images("truncated_jpeg"),
        messages=("decode_image_bytes", "Invalid JPEG data"),
    ),
    Request(
        "truncated PNG",
        images("truncated_png"),
        messages=("decode_image_bytes", "Invalid PNG data"),
    ),
    Request(
        "GIF cut after its header",
        images("truncated_gif"),
        messages=("decode_image_bytes", "Invalid GIF data"),
    ),
    Request(
        "PNG with a corrupt data chunk",
        images("corrupt_png"),
        messages=("decode_image_bytes", "Invalid PNG data"),
    ),
    Request(
        "PNG of 0x0 pixels", images("empty_png"), messages=("decode_image_bytes", "Invalid PNG")
    ),
    Request("random bytes", images("random"), messages=(NOT_AN_IMAGE, "[19 ")),
    Request("text as image_bytes", images("prose"), messages=(NOT_AN_IMAGE, "[97 32 114 101 100 ")),
    Request("TIFF", images("tiff"), messages=(NOT_AN_IMAGE,)),
    Request("JPEG XL", images("jpeg_xl"), messages=(NOT_AN_IMAGE,)),
    Request(
        "20000x20000 PNG (1.2 GB decoded)",
        images("large_png"),
        messages=(f"image_bytes is {LARGE_SIDE}x{LARGE_SIDE} pixels", OVER_PIXEL_CAP),
    ),
    Request(
        "JPEG whose header says 20000x20000",
        images("large_jpeg"),
        messages=(f"image_bytes is {LARGE_SIDE}x{LARGE_SIDE} pixels", OVER_PIXEL_CAP),
    ),
    Request(
        "GIF whose screen is 65535x65535",
        images("large_gif"),
        messages=("image_bytes is 65535x65535 pixels", OVER_PIXEL_CAP),
    ),
    Request(
        "WebP whose header says 20000x20000",
        images("large_webp"),
        messages=(f"image_bytes is {LARGE_SIDE}x{LARGE_SIDE} pixels", OVER_PIXEL_CAP),
    ),
    Request(
        "valid PNG padded over MAX_IMAGE_BYTES",
        images("jpeg", "over_cap_png"),
        messages=(
            f"image_bytes[1] is {OVER_CAP_BYTES} bytes",
            f"over the cap of MAX_IMAGE_BYTES={MAX_IMAGE_BYTES}",
        ),
    ),
    Request("16-bit BMP", images("bmp16"), messages=("BMP with 16 bits per pixel",)),
    Request("2-frame GIF", images("gif"), "ok"),
    Request("grayscale PNG", images("gray_png"), "ok"),
    Request("16-bit PNG", images("png16"), "ok"),
    Request("RGBA WebP", images("rgba_webp"), "ok"),
    Request("8-bit palette BMP", images("palette_bmp"), "ok"),
    Request("empty text", texts("empty"), "ok"),
    Request("non-UTF-8 text", texts("latin1_text"), "ok"),
    Request("text cut inside a UTF-8 character", texts("cut_utf8_text"), "ok"),
    Request("control characters in text", texts("control_text"), "ok"),
    Request("1 MB of text", texts("megabyte_text"), "ok"),
    Request("1 MB of 2-byte characters", texts("megabyte_utf8_text"), "ok"),
    Request(
        "a batch of odd but valid inputs",
        {
            **images("gif", "rgba_webp", "gray_png"),
            **texts("empty", "latin1_text", "megabyte_text"),
        },
        "ok",
    ),
)
GOOD = Request("good", {**images("jpeg", "jpeg"), **texts("text", "text")}, "ok")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, idat: bytes, color_type: int = 0) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def large_black_png(side: int, rows_per_block: int = 500) -> bytes:
    """A valid side x side grayscale PNG, all black, built without holding its pixels.

    A full flush makes each block of rows compress to the same bytes, so one block is
    compressed and repeated; zlib's Adler-32 of n zero bytes is (n mod 65521) << 16 | 1.
    """
    row = b"\x00" * (1 + side)  # filter type 0, then one byte per pixel
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(row * rows_per_block) + compressor.flush(zlib.Z_FULL_FLUSH)
    length = len(row) * side
    adler = struct.pack(">I", ((length % 65521) << 16) | 1)
    return png(side, side, b"\x78\xda" + block * (side // rows_per_block) + b"\x03\x00" + adler)


def bmp(bits: int, palette: bytes = b"", width: int = 4, height: int = 4) -> bytes:
    """An uncompressed BMP of `bits` per pixel (its pixels all zero)."""
    pixels = b"\x00" * (((width * bits + 31) // 32) * 4 * height)
    offset = 54 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 0, len(pixels), 2835, 2835, 0, 0)
    return (
        b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels
    )


def encoded(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def payloads(image_path: str, text: str) -> dict[str, bytes]:
    """Payload name -> bytes, for the request specs of REQUESTS and GOOD."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    noise_jpeg = tf.io.encode_jpeg(noise).numpy()
    noise_png = tf.io.encode_png(noise).numpy()
    frames = [Image.new("RGB", (24, 16), colour) for colour in ((200, 30, 30), (30, 30, 200))]
    gif = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    rgba_webp = encoded(Image.new("RGBA", (20, 12), (10, 200, 30, 100)), "WEBP")
    assert rgba_webp[12:16] == b"VP8X"  # the extended header, with its 24-bit sizes
    start_of_frame = noise_jpeg.index(b"\xff\xc0")
    side_16 = struct.pack(">HH", LARGE_SIDE, LARGE_SIDE)
    side_24 = struct.pack("<I", LARGE_SIDE - 1)[:3]
    idat = noise_png.index(b"IDAT")
    return {
        "jpeg": Path(image_path).read_bytes(),
        "text": text.encode(),
        "prose": b"a red circle above a blue square",
        "empty": b"",
        "truncated_jpeg": noise_jpeg[: len(noise_jpeg) // 2],
        "truncated_png": noise_png[: len(noise_png) // 2],
        "truncated_gif": gif[:13],
        "corrupt_png": noise_png[: idat + 8] + bytes(64) + noise_png[idat + 72 :],
        "empty_png": png(0, 0, zlib.compress(b"")),
        "random": b"\x13" + rng.bytes(4095),
        "tiff": b"II*\x00" + bytes(60),
        "jpeg_xl": b"\xff\x0a" + bytes(60),
        "large_png": large_black_png(LARGE_SIDE),
        "large_jpeg": (
            noise_jpeg[: start_of_frame + 5] + side_16 + noise_jpeg[start_of_frame + 9 :]
        ),
        "large_gif": gif[:6] + struct.pack("<HH", 65535, 65535) + gif[10:],
        "large_webp": rgba_webp[:24] + side_24 + side_24 + rgba_webp[30:],
        "over_cap_png": noise_png + bytes(OVER_CAP_BYTES - len(noise_png)),
        "bmp16": bmp(16),
        "gif": gif,
        "gray_png": tf.io.encode_png(noise[..., :1]).numpy(),
        "png16": tf.io.encode_png(noise.astype(np.uint16) * 257).numpy(),
        "rgba_webp": rgba_webp,
        "palette_bmp": bmp(8, palette=bytes(range(256)) * 4),
        "latin1_text": "un caf\xe9 tr\xe8s rouge".encode("latin-1") + b"\xff\xfe\x80",
        "cut_utf8_text": "a red caf\xe9".encode()[:-1],
        "control_text": b"a\x00red\x01circle\x7f\x1b[31m\r\n\t",
        "megabyte_text": b"a red circle " * (MEGABYTE // 13),
        "megabyte_utf8_text": "\xe9".encode() * (MEGABYTE // 2),
    }


CORPUS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import tensorflow as tf

    manifest = json.loads(Path(sys.argv[1]).read_text())
    if manifest["import_tensorflow_text"]:
        import tensorflow_text  # the ops of --tokenizer wordpiece exports
    payloads = {path.name: path.read_bytes() for path in Path(manifest["payloads"]).iterdir()}

    def value(spec):
        kind, *arguments = spec
        if kind == "batch":
            return tf.constant([payloads[name] for name in arguments[0]], tf.string)
        if kind == "scalar":
            return tf.constant(payloads[arguments[0]], tf.string)
        if kind == "matrix":
            return tf.constant([[payloads[name] for name in arguments[0]]], tf.string)
        if kind == "int32":
            return tf.constant([1], tf.int32)
        if kind == "float32":
            return tf.constant([1.5], tf.float32)
        if kind == "python_ints":
            return [1]
        raise ValueError(f"unknown value spec {spec}")

    def feed(keys, request):  # a role the request leaves out gets good payloads
        batches = [spec[1] for spec in request["inputs"].values() if spec[0] == "batch"]
        size = len(batches[0]) if batches else 1
        inputs = {}
        for key in keys:
            role = "image" if key == "image_bytes" else "text"
            spec = request["inputs"].get(role, ("batch", [manifest["defaults"][role]] * size))
            if spec[0] != "missing":
                inputs[key] = value(spec)
        if request["extra_key"]:
            inputs["unexpected"] = tf.constant([b"x"])
        return inputs

    def call(signature, inputs):
        try:
            outputs = signature(**inputs)
        except tf.errors.InvalidArgumentError as error:
            return {"outcome": "InvalidArgumentError", "message": str(error)[:4000]}
        except Exception as error:  # a TypeError is expected for some; any other is reported
            return {"outcome": type(error).__name__, "message": str(error)[:4000]}
        return {"outcome": "ok", "shapes": {k: v.shape.as_list() for k, v in outputs.items()}}

    results = {}
    for name, directory in manifest["exports"].items():
        loaded = tf.saved_model.load(directory)
        for signature_name, signature in loaded.signatures.items():
            keys = sorted(signature.structured_input_signature[1])
            roles = {"image" if key == "image_bytes" else "text" for key in keys}
            rows = {}
            for request in manifest["requests"]:
                if set(request["inputs"]) <= roles:
                    rows[request["name"]] = {
                        "response": call(signature, feed(keys, request)),
                        "good_after": call(signature, feed(keys, manifest["good"])),
                    }
            text_key = next((key for key in keys if key != "image_bytes"), None)
            results[f"{name}/{signature_name}"] = {
                "roles": sorted(roles), "text_key": text_key, "rows": rows
            }
    project = [m for m in ("models", "layers", "datasets", "tasks", "serving") if m in sys.modules]
    Path(sys.argv[2]).write_text(json.dumps({"results": results, "project_modules": project}))
    """
)


def as_json(request: Request) -> dict:
    return {"name": request.name, "inputs": request.inputs, "extra_key": request.extra_key}


def batch_size(request: Request) -> int:
    """The batch of a request that must succeed: the length of its batch specs (1 by default)."""
    sizes = {len(spec[1]) for spec in request.inputs.values()}
    assert len(sizes) == 1, request
    return sizes.pop()


def run_corpus(exports, tmp_path: Path, import_tensorflow_text: bool = False) -> dict:
    first = next(iter(exports.values()))
    payload_dir = tmp_path / "payloads"
    payload_dir.mkdir()
    for name, content in payloads(first.image_path, first.text).items():
        (payload_dir / name).write_bytes(content)
    manifest = {
        "payloads": str(payload_dir),
        "exports": {name: str(export.version_dir) for name, export in exports.items()},
        "requests": [as_json(request) for request in REQUESTS],
        "good": as_json(GOOD),
        "defaults": {"image": "jpeg", "text": "text"},
        "import_tensorflow_text": import_tensorflow_text,
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    completed = subprocess.run(
        [sys.executable, "-c", CORPUS_SCRIPT, "manifest.json", "results.json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads((tmp_path / "results.json").read_text())


def test_no_request_crashes_an_export_or_stops_it_serving(exports, tmp_path):
    check_corpus_report(run_corpus(exports, tmp_path), exports)


def test_no_request_crashes_a_wordpiece_export_or_stops_it_serving(wordpiece_exports, tmp_path):
    # A scalar must not reach the tf-text tokenizer, which would crash the process
    # (shared/UPSTREAM.md): the corpus's scalar and matrix requests check that.
    report = run_corpus(wordpiece_exports, tmp_path, import_tensorflow_text=True)
    check_corpus_report(report, wordpiece_exports)


def check_corpus_report(report: dict, exports) -> None:
    """Every request had its outcome and message, and the good request after it was served."""
    assert report["project_modules"] == []
    assert {where.split("/")[0] for where in report["results"]} == set(exports)
    problems = []
    bad_requests = {name: set() for name in exports}
    for where, signature in report["results"].items():
        rows = signature["rows"]
        for request in REQUESTS:
            sent = set(request.inputs) <= set(signature["roles"])
            assert (request.name in rows) == sent, (where, request.name)
            if not sent:
                continue
            response, good_after = rows[request.name]["response"], rows[request.name]["good_after"]
            if good_after["outcome"] != "ok":
                problems.append(f"{where}: the good request after {request.name!r}: {good_after}")
            if response["outcome"] != request.outcome:
                problems.append(f"{where}: {request.name!r} -> {response}")
            elif request.outcome == "ok":
                size = batch_size(request)
                if any(shape[0] != size for shape in response["shapes"].values()):
                    problems.append(f"{where}: {request.name!r} gave shapes {response['shapes']}")
            else:
                bad_requests[where.split("/")[0]].add(request.name)
                for part in request.messages:
                    expected = part.format(text=signature["text_key"])
                    if expected not in response["message"]:
                        problems.append(
                            f"{where}: {request.name!r}: {expected!r} not in {response['message']}"
                        )
    assert not problems, "\n".join(problems)
    assert all(len(names) >= 20 for names in bad_requests.values()), bad_requests


def test_text_is_cut_on_a_character_boundary_with_invalid_utf8_replaced():
    sequence_length = 4
    characters = CHARACTERS_PER_TOKEN * sequence_length
    clean = tf.function(lambda text: texts_from_strings(text, "text", sequence_length))
    raw = [
        "\xe9".encode() * MEGABYTE,  # 2 bytes a character
        ("ab" + "\u20ac" * 2 * characters).encode(),  # the byte cut falls inside a character
        b"caf\xe9 \xff",
        b"",
        b"a red circle",
    ]
    cleaned = [text.decode("utf-8") for text in clean(tf.constant(raw)).numpy()]
    assert cleaned == [
        "\xe9" * characters,
        "ab" + "\u20ac" * (characters - 2),
        "caf\ufffd \ufffd",
        "",
        "a red circle",
    ]
