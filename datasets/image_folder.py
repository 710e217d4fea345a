"""Reader for a folder of images with their captions beside them.

Spec: the folder's path (`--dataset path/to/folder/`). The folder holds images
(the suffixes in `IMAGE_SUFFIXES`) and their captions in one of these forms:

- `captions.csv` (a header with `image,caption`) or `captions.jsonl` (one
  `{"image": ..., "caption": ...}` object a line); an image may have several rows.
- `captions.txt`: `NAME<TAB>CAPTION` lines; an image may have several lines.
- Sidecars: `cat.txt` beside `cat.jpg`, one caption a line; then every image
  of the folder (not of its subfolders) needs one.

Exactly one of the three captions files may be present; with one, the image
names in it resolve relative to `image_dir` (--image-dir) when given, else to
the folder, and sidecar files are not read.
"""

from pathlib import Path

from datasets.examples import CaptionExamples
from datasets.tabular import read_caption_table

CAPTION_FILES = ("captions.csv", "captions.jsonl", "captions.txt")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp")


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read captions: {error}") from error


def read_tab_captions(path: str | Path, image_dir: str | Path | None = None) -> CaptionExamples:
    """Reads `NAME<TAB>CAPTION` lines; the lines of one image become its captions.

    Raises:
        ValueError: naming the file and line of a line without a tab, without a
            name or with an empty caption. Image files are checked by the validation pass.
    """
    path = Path(path)
    root = Path(image_dir) if image_dir is not None else path.parent
    captions: dict[str, list[str]] = {}
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        name, tab, caption = line.partition("\t")
        if not tab or not name.strip():
            raise ValueError(f"{path}: line {number}: expected NAME<TAB>CAPTION, got {line[:80]!r}")
        if not caption.strip():
            raise ValueError(f"{path}: line {number}: empty caption for {name.strip()!r}")
        image_path = str((root / name.strip()).resolve())
        captions.setdefault(image_path, []).append(caption.strip())
    if not captions:
        raise ValueError(f"{path}: no captions.")
    return CaptionExamples(list(captions), list(captions.values()), str(path))


def read_sidecar_captions(folder: Path, images: list[Path]) -> CaptionExamples:
    """Reads `NAME.txt` beside each image `NAME.<suffix>`, one caption a line.

    Raises:
        ValueError: naming the image without a sidecar or the sidecar without a caption.
    """
    captions = []
    for image in images:
        sidecar = image.with_suffix(".txt")
        if not sidecar.is_file():
            raise ValueError(
                f"{folder}: image {image.name!r} has no captions file {sidecar.name!r} beside it."
            )
        texts = [line.strip() for line in _read_lines(sidecar) if line.strip()]
        if not texts:
            raise ValueError(f"{sidecar}: no caption for image {image.name!r}.")
        captions.append(texts)
    return CaptionExamples([str(image.resolve()) for image in images], captions, str(folder))


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
