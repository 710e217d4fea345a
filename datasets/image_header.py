"""Image width and height from the first bytes of a file, before anything is decoded.

Two readers of the same headers:

- `read_image_header` (pure Python, for checks over metadata before training)
  reads the first bytes of a JPEG, PNG, GIF, BMP or WebP file, and with
  `check_complete=True` also the file's tail, to catch truncated files cheaply.
- `image_pixels` and `checked_decode` (TensorFlow ops only, for tf.data maps and
  exported serving signatures that load with no project code) read the same
  headers in-graph and refuse an image over a pixel cap before it is decoded:
  a 20000x20000 PNG of 1.2 MB would otherwise decode to 1.2 GB
  (shared/UPSTREAM.md, "Images"). JPEG XL, which `tf.io.decode_image` also takes,
  is refused outright: its bit-packed size header is not read here.
"""

from pathlib import Path
from typing import BinaryIO, NamedTuple

import tensorflow as tf

from datasets.images import decode_image

DEFAULT_MAX_PIXELS = 64_000_000
# Per encoded image: the serving signatures refuse larger ones, and so does the validation pass.
MAX_IMAGE_BYTES = 20_000_000
HEAD_BYTES = 32
TAIL_BYTES = 4096
UNSUPPORTED = "unsupported format"
TRUNCATED = "truncated image"
CORRUPT = "corrupt header"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_XL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE_MARKERS = frozenset([0x01, *range(0xD0, 0xD8)])
_OTHER_SIGNATURES = (
    (0, b"\xff\x0a", "JPEG XL"),
    (0, _JPEG_XL_CONTAINER, "JPEG XL"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"%PDF", "PDF"),
    (0, b"PK\x03\x04", "a ZIP archive"),
    (0, b"\x1f\x8b", "gzip data"),
    (0, b"\x00\x00\x01\x00", "a Windows icon (ICO)"),
    (4, b"jP  ", "JPEG 2000"),
    (4, b"ftyp", "an ISO media file (HEIC, AVIF, MP4 or MOV)"),
    (0, b"RIFF", "a RIFF container that is not WebP"),
)


class ImageHeader(NamedTuple):
    """What the first bytes of an image file say.

    Attributes:
        format: "jpeg", "png", "gif", "bmp" or "webp".
        width: width in pixels.
        height: height in pixels.
    """

    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


class ImageFileError(ValueError):
    """A file that cannot be decoded as an image, with the reason as a field for reports.

    Attributes:
        path: the file.
        reason: UNSUPPORTED, TRUNCATED or CORRUPT.
        detail: what exactly is wrong, in words.
    """

    def __init__(self, path: str, reason: str, detail: str):
        super().__init__(f"{path}: {reason}: {detail}")
        self.path = path
        self.reason = reason
        self.detail = detail


def read_image_header(path: str | Path, *, check_complete: bool = False) -> ImageHeader:
    """Reads the format, width and height of an image file from its first bytes.

    Args:
        path: a JPEG, PNG, GIF, BMP or WebP file.
        check_complete: also read the file's tail (at most TAIL_BYTES) and check that
            the file is not cut short: a JPEG ends with the end-of-image marker FF D9
            (trailing zero bytes allowed), a PNG with its IEND chunk, a GIF with 0x3B,
            and a BMP or WebP is at least as long as its header declares.

    Returns:
        The ImageHeader.

    Raises:
        ImageFileError: (a ValueError) naming the file and the reason: an unsupported
            format (saying what the first bytes look like), a truncated file or a
            corrupt header.
        OSError: the file cannot be opened or read.

    Example:
        >>> read_image_header("cat.png")
        ImageHeader(format='png', width=640, height=480)
    """
    path = str(path)
    with open(path, "rb") as file:
        head = file.read(HEAD_BYTES)
        header = _parse_header(file, head, path)
        if check_complete:
            _check_complete(file, head, header, path)
    return header


def _parse_header(file: BinaryIO, head: bytes, path: str) -> ImageHeader:
    if head.startswith(b"\xff\xd8\xff"):
        header = _jpeg_header(file, path)
    elif head.startswith(_PNG_SIGNATURE):
        _need(head, 24, "png", path)
        if head[12:16] != b"IHDR":
            raise ImageFileError(path, CORRUPT, f"PNG's first chunk is {head[12:16]!r}, not IHDR")
        header = ImageHeader("png", _big(head, 16, 4), _big(head, 20, 4))
    elif head.startswith(b"GIF8"):
        _need(head, 10, "gif", path)
        header = ImageHeader("gif", _little(head, 6, 2), _little(head, 8, 2))
    elif head.startswith(b"BM"):
        header = _bmp_header(head, path)
    elif head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        header = _webp_header(head, path)
    else:
        raise ImageFileError(
            path,
            UNSUPPORTED,
            f"the first bytes look like {_describe(head)}; expected JPEG, PNG, GIF, BMP or WebP",
        )
    if header.width <= 0 or header.height <= 0:
        raise ImageFileError(
            path, CORRUPT, f"{header.format} header gives {header.width}x{header.height} pixels"
        )
    return header


def _jpeg_header(file: BinaryIO, path: str) -> ImageHeader:
    """Walks the JPEG marker segments from the start of the file to the frame header (SOFn)."""
    file.seek(2)
    while True:
        byte = file.read(1)
        if not byte:
            raise ImageFileError(path, TRUNCATED, "JPEG ends before its frame header (SOFn)")
        if byte != b"\xff":
            raise ImageFileError(
                path,
                CORRUPT,
                f"expected a JPEG marker at byte {file.tell() - 1}, found {byte.hex()}",
            )
        while byte == b"\xff":
            byte = file.read(1)
        if not byte:
            raise ImageFileError(path, TRUNCATED, "JPEG ends before its frame header (SOFn)")
        marker = byte[0]
        if marker in _JPEG_STANDALONE_MARKERS:
            continue
        if marker in (0xD9, 0xDA):
            raise ImageFileError(path, CORRUPT, "JPEG has no frame header (SOFn) before its data")
        segment = file.read(7 if marker in _JPEG_FRAME_MARKERS else 2)
        if len(segment) < 2:
            raise ImageFileError(path, TRUNCATED, "JPEG ends inside a marker segment")
        if marker in _JPEG_FRAME_MARKERS:
            if len(segment) < 7:
                raise ImageFileError(path, TRUNCATED, "JPEG ends inside its frame header")
            return ImageHeader("jpeg", _big(segment, 5, 2), _big(segment, 3, 2))
        length = _big(segment, 0, 2)
        if length < 2:
            raise ImageFileError(path, CORRUPT, f"JPEG segment length {length} is below 2")
        file.seek(length - 2, 1)


def _bmp_header(head: bytes, path: str) -> ImageHeader:
    _need(head, 18, "bmp", path)
    info_size = _little(head, 14, 4)
    if info_size == 12:
        _need(head, 22, "bmp", path)
        return ImageHeader("bmp", _little(head, 18, 2), _little(head, 20, 2))
    if info_size < 40:
        raise ImageFileError(path, CORRUPT, f"BMP info header size {info_size} is not 12 or 40+")
    _need(head, 26, "bmp", path)
    return ImageHeader("bmp", _signed(head, 18), abs(_signed(head, 22)))


def _webp_header(head: bytes, path: str) -> ImageHeader:
    chunk = head[12:16]
    if chunk == b"VP8X":
        _need(head, 30, "webp", path)
        return ImageHeader("webp", 1 + _little(head, 24, 3), 1 + _little(head, 27, 3))
    if chunk == b"VP8 ":
        _need(head, 30, "webp", path)
        if head[23:26] != b"\x9d\x01\x2a":
            raise ImageFileError(path, CORRUPT, "WebP VP8 frame lacks its start code 9D 01 2A")
        return ImageHeader("webp", _little(head, 26, 2) & 0x3FFF, _little(head, 28, 2) & 0x3FFF)
    if chunk == b"VP8L":
        _need(head, 25, "webp", path)
        if head[20] != 0x2F:
            raise ImageFileError(path, CORRUPT, "WebP VP8L data lacks its signature byte 2F")
        bits = _little(head, 21, 4)
        return ImageHeader("webp", 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF))
    raise ImageFileError(path, CORRUPT, f"WebP's first chunk is {chunk!r}, not VP8, VP8L or VP8X")


def _check_complete(file: BinaryIO, head: bytes, header: ImageHeader, path: str) -> None:
    size = file.seek(0, 2)
    if header.format in ("bmp", "webp"):
        declared = _little(head, 2, 4) if header.format == "bmp" else 8 + _little(head, 4, 4)
        if size < declared:
            raise ImageFileError(
                path,
                TRUNCATED,
                f"file has {size} bytes, its {header.format} header declares {declared}",
            )
        return
    file.seek(max(0, size - TAIL_BYTES))
    tail = file.read()
    if header.format == "jpeg" and not tail.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise ImageFileError(
            path, TRUNCATED, "JPEG does not end with the end-of-image marker FF D9"
        )
    if header.format == "png" and not tail.endswith(_PNG_END):
        raise ImageFileError(path, TRUNCATED, "PNG does not end with its IEND chunk")
    if header.format == "gif" and not tail.endswith(b"\x3b"):
        raise ImageFileError(path, TRUNCATED, "GIF does not end with its trailer byte 3B")


def _need(head: bytes, count: int, image_format: str, path: str) -> None:
    if len(head) < count:
        raise ImageFileError(
            path, TRUNCATED, f"{image_format} header needs {count} bytes, the file has {len(head)}"
        )


def _describe(head: bytes) -> str:
    """Says in words what a file's first bytes look like, for the unsupported-format message."""
    if not head:
        return "an empty file"
    for offset, signature, name in _OTHER_SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return name
    text = head.decode("utf-8", errors="ignore")
    if len(text) >= len(head) // 2 and all(char.isprintable() or char.isspace() for char in text):
        return f"text ({text[:20]!r})"
    return f"bytes {head[:8].hex(' ')}"


def _big(data: bytes, offset: int, count: int) -> int:
    return int.from_bytes(data[offset : offset + count], "big")


def _little(data: bytes, offset: int, count: int) -> int:
    return int.from_bytes(data[offset : offset + count], "little")


def _signed(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 4], "little", signed=True)


def _byte_weights(fields: list[tuple[int, int, bool]]) -> list[list[float]]:
    """A [HEAD_BYTES, len(fields)] matrix: header bytes @ it = each unsigned field's value.

    Args:
        fields: (offset, byte count, big-endian) per field.
    """
    weights = [[0.0] * len(fields) for _ in range(HEAD_BYTES)]
    for column, (offset, count, big_endian) in enumerate(fields):
        for index in range(count):
            power = count - 1 - index if big_endian else index
            weights[offset + index][column] = float(256**power)
    return weights


# (height, width) fields: PNG IHDR (big-endian), GIF logical screen, BMP info header (signed,
# the height's sign is the row order), WebP VP8X (size - 1) and VP8 (14 bits each).
_HEADER_FIELDS = _byte_weights(
    [(20, 4, True), (16, 4, True), (8, 2, False), (6, 2, False), (22, 4, False), (18, 4, False)]
    + [(27, 3, False), (24, 3, False), (28, 2, False), (26, 2, False)]
)
_SIGNATURES = (  # (offset, bytes) that each must match, per format, in _HEADER_FIELDS' order
    ((0, _PNG_SIGNATURE),),
    ((0, b"GIF8"),),
    ((0, b"BM"),),
    ((0, b"RIFF"), (8, b"WEBPVP8X")),
    ((0, b"RIFF"), (8, b"WEBPVP8 ")),
    ((0, b"RIFF"), (8, b"WEBPVP8L")),
)


def image_height_width(image_bytes: tf.Tensor) -> tf.Tensor:
    """Reads [height, width] (int64) from the header of encoded image bytes, in-graph.

    Only TensorFlow ops, so it runs in tf.data maps and in exported signatures. Reads
    the same fields that the decoders allocate from: `tf.image.extract_jpeg_shape` for
    JPEG; PNG IHDR bytes 16-24 (big-endian); GIF logical screen bytes 6-10, BMP bytes
    18-26 as TensorFlow's BMP decoder reads them, WebP VP8/VP8L/VP8X (little-endian).
    The byte fields of every format come from one matrix product, so that the check
    costs a few ops per image rather than one per byte.

    Args:
        image_bytes: string scalar, one encoded image.

    Returns:
        int64 [2]: height and width; [0, 0] for a format other than JPEG, PNG, GIF, BMP
        or WebP (leave that to the decoder's own error). A JPEG whose header cannot be
        parsed raises the InvalidArgumentError of `tf.image.extract_jpeg_shape`.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    padded = tf.strings.join([tf.strings.substr(image_bytes, 0, HEAD_BYTES), b"\x00" * HEAD_BYTES])
    head = tf.strings.substr(padded, 0, HEAD_BYTES)
    return tf.cond(
        tf.equal(tf.strings.substr(head, 0, 3), b"\xff\xd8\xff"),
        lambda: tf.cast(tf.image.extract_jpeg_shape(image_bytes)[:2], tf.int64),
        lambda: _other_height_width(head),
    )


def _other_height_width(head: tf.Tensor) -> tf.Tensor:
    """[height, width] from the first HEAD_BYTES of a PNG, GIF, BMP or WebP; else [0, 0]."""
    byte = tf.reshape(tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64), [HEAD_BYTES])
    fields = tf.cast(
        tf.linalg.matvec(tf.constant(_HEADER_FIELDS, tf.float64), tf.cast(byte, tf.float64), True),
        tf.int64,
    )
    signed = tf.where(fields >= 2**31, fields - 2**32, fields)
    png, gif = fields[0:2], fields[2:4]
    bmp = tf.stack([tf.abs(signed[4]), signed[5]])
    vp8x, vp8 = 1 + fields[6:8], fields[8:10] % 16384
    vp8l = tf.stack(
        [
            1 + byte[22] // 64 + byte[23] * 4 + (byte[24] % 16) * 1024,
            1 + byte[21] + (byte[22] % 64) * 256,
        ]
    )
    candidates = tf.stack([png, gif, bmp, vp8x, vp8, vp8l, tf.zeros([2], tf.int64)])
    matches = [
        tf.reduce_all(
            [tf.equal(tf.strings.substr(head, offset, len(part)), part) for offset, part in parts]
        )
        for parts in _SIGNATURES
    ]
    # The first format whose signature matches; the zeros row when none does.
    return candidates[first_true(tf.stack([*matches, True]))]


def first_true(flags: tf.Tensor) -> tf.Tensor:
    """The index (int64 scalar) of the first True of a bool vector that holds one.

    Not `tf.argmax`, whose choice among tied maxima TensorFlow leaves unspecified.
    """
    return tf.reduce_min(tf.where(flags)[:, 0])


def image_pixels(image_bytes: tf.Tensor) -> tf.Tensor:
    """Width times height (int64 scalar) read from the header in-graph; 0 for unknown formats."""
    height_width = image_height_width(image_bytes)
    return height_width[0] * height_width[1]


def checked_decode(image_bytes: tf.Tensor, max_pixels: int = DEFAULT_MAX_PIXELS) -> tf.Tensor:
    """Like `datasets.images.decode_image`, but refuses an image over `max_pixels` unread.

    The header is read first (`image_height_width`) and the decoder runs only after an
    assertion that width x height <= max_pixels, so a decompression bomb costs a few
    bytes of reading instead of gigabytes of memory. JPEG XL, which `tf.io.decode_image`
    also decodes, is refused: its bit-packed size header is not read here. Other
    formats reach the decoder, which raises its own error.

    Args:
        image_bytes: string scalar, one encoded JPEG, PNG, GIF, BMP or WebP image.
        max_pixels: the largest width x height accepted.

    Returns:
        uint8 [height, width, 3], exactly what `decode_image` returns.

    Raises:
        tf.errors.InvalidArgumentError: the image is over the cap (the message gives
            width x height and the cap) or JPEG XL, or the decoder's own error for bad
            bytes.
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    height_width = image_height_width(image_bytes)
    head = tf.strings.substr(image_bytes, 0, 12, unit="BYTE")
    checks = [
        tf.debugging.Assert(
            tf.not_equal(tf.strings.substr(head, 0, 2), b"\xff\x0a")
            & tf.not_equal(head, _JPEG_XL_CONTAINER),
            [
                "datasets/image_header.py: image_bytes is JPEG XL, whose size cannot be "
                "checked before decoding; use JPEG, PNG, GIF, BMP or WebP"
            ],
        ),
        tf.debugging.Assert(
            height_width[0] * height_width[1] <= max_pixels,
            [
                tf.strings.format(
                    "datasets/image_header.py: image_bytes is {}x{} pixels (width x height), "
                    f"over the cap of max_pixels={max_pixels}; refused before decoding",
                    (height_width[1], height_width[0]),
                )
            ],
        ),
    ]
    with tf.control_dependencies(checks):
        return decode_image(tf.identity(image_bytes))
