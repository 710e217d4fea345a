"""Reader for a folder of images with their captions beside them.

Spec: the folder's path (`--dataset path/to/folder/`). The folder holds images
(the suffixes in `IMAGE_SUFFIXES`) and their captions in one of these forms:

- `captions.csv` (a header with `image,caption`) or `captions.jsonl` (one
  `{"image": ..., "caption": ...}` object a line); an image may have several rows.
- `captions.txt`: `NAME<TAB>CAPTION` lines; an image may have several lines.
- Sidecars: `cat.txt` beside `cat.jpg`, one caption a line (blank lines
  ignored); then every image of the folder (not of its subfolders) needs one,
  and one without is reported and left out.

Exactly one of the three captions files may be present; with one, the image
names in it resolve relative to `image_dir` (--image-dir) when given, else to
the folder, and sidecar files are not read.

What is wrong with one line, row or image (a line without a tab, an empty or
non-UTF-8 caption, an image without its sidecar or with no caption left) is left
out and recorded by file and line in the examples' problems, for the validation
pass to report; a bad caption leaves out only that caption.
"""

from pathlib import Path

from datasets.examples import CaptionCollector, CaptionExamples
from datasets.tabular import read_caption_table
from datasets.validation import MALFORMED_ROW, MISSING_FILE, UNREADABLE_FILE, Problem

CAPTION_FILES = ("captions.csv", "captions.jsonl", "captions.txt")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp")


def _read_lines(path: Path) -> list[str]:
    """The lines of `path`, invalid UTF-8 bytes kept (as surrogates) for the caption checks."""
    return path.read_text(encoding="utf-8-sig", errors="surrogateescape").splitlines()


def read_tab_captions(path: str | Path, image_dir: str | Path | None = None) -> CaptionExamples:
    """Reads `NAME<TAB>CAPTION` lines; the lines of one image become its captions.

    Raises:
        ValueError: naming the file when it cannot be read, has no line or leaves no
            usable image. Bad lines are recorded (see the module docstring); image
            files are checked by the validation pass.
    """
    path = Path(path)
    root = Path(image_dir) if image_dir is not None else path.parent
    try:
        lines = _read_lines(path)
    except OSError as error:
        raise ValueError(f"{path}: cannot read captions: {error}") from error
    if not any(line.strip() for line in lines):
        raise ValueError(f"{path}: no captions.")
    collector = CaptionCollector()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        name, tab, caption = line.partition("\t")
        if not tab or not name.strip():
            detail = f"expected NAME<TAB>CAPTION, got {line[:80]!r}"
            collector.reject(Problem(None, where, MALFORMED_ROW, detail))
        else:
            collector.add(str((root / name.strip()).resolve()), caption, where)
    return collector.examples(str(path))


def read_sidecar_captions(folder: Path, images: list[Path]) -> CaptionExamples:
    """Reads `NAME.txt` beside each image `NAME.<suffix>`, one caption a line.

    An image without a readable sidecar, or whose sidecar has no usable caption, is
    left out and recorded in the examples' problems.

    Raises:
        ValueError: naming the folder when no image is left with a caption.
    """
    collector = CaptionCollector()
    for image in images:
        sidecar = image.with_suffix(".txt")
        try:
            lines = _read_lines(sidecar)
        except FileNotFoundError:
            detail = f"image {image.name!r} has no captions file {sidecar.name!r} beside it"
            collector.reject(Problem(None, str(sidecar), MISSING_FILE, detail))
            continue
        except OSError as error:
            detail = f"captions of image {image.name!r}: {error.strerror or error}"
            collector.reject(Problem(None, str(sidecar), UNREADABLE_FILE, detail))
            continue
        key = str(image.resolve())
        collector.add_image(key, str(sidecar))
        for number, line in enumerate(lines, start=1):
            if line.strip():
                collector.add(key, line, f"{sidecar} line {number}")
    return collector.examples(str(folder))


def read_image_folder(folder: str | Path, image_dir: str | Path | None = None) -> CaptionExamples:
    """Reads a folder of images and their captions (see the module docstring).

    Raises:
        ValueError: naming the folder and the files it looked for when it has
            no captions in any form, or the captions files when there are several.
    """
    folder = Path(folder)
    present = [name for name in CAPTION_FILES if (folder / name).is_file()]
    if len(present) > 1:
        raise ValueError(f"{folder}: several captions files {present}; keep exactly one.")
    if present and present[0] == "captions.txt":
        return read_tab_captions(folder / "captions.txt", image_dir)
    if present:
        return read_caption_table(folder / present[0], image_dir)
    images = sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
    )
    if any(image.with_suffix(".txt").is_file() for image in images):
        return read_sidecar_captions(folder, images)
    raise ValueError(
        f"{folder}: no captions found; looked for {', '.join(CAPTION_FILES)} and for a "
        f"NAME.txt beside each image NAME{'/'.join(IMAGE_SUFFIXES)} "
        f"({len(images)} images in the folder)."
    )
