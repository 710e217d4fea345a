"""Reader for Flickr8k / Flickr30k caption token files, with optional split lists.

A token file holds one caption per line, `NAME#K<TAB>CAPTION`, K the number of
the caption (0 to 4): Flickr8k.token.txt, Flickr8k.lemma.token.txt (the same
form, lemmatised captions) and Flickr30k's results_20130124.token. A token
file is told apart by content, whatever its name: its first non-empty line
matches `^[^\\t#]+#\\d+\\t`.

Spec forms (for --dataset, --val-dataset and --test-dataset):

- `TOKENS`: every image of the token file. An image with no file on disk
  (Flickr8k.token.txt names one, `2258277193_586949ec62.jpg.1`) is left to
  train.py's validation pass, which skips and reports it or stops, by
  `--on-bad-example`.
- `TOKENS:SPLIT_LIST`: only the images named in SPLIT_LIST, a text file with
  one image name per line (blank lines ignored), in its order. The text after
  the last `:` is the split list; a relative one that does not exist from the
  working folder is looked up beside the token file. One token file then gives
  all three splits, as with Flickr8k's own lists::

      --dataset Flickr8k.token.txt:Flickr_8k.trainImages.txt
      --val-dataset Flickr8k.token.txt:Flickr_8k.devImages.txt
      --test-dataset Flickr8k.token.txt:Flickr_8k.testImages.txt

  A listed image that is not in the token file is reported as an unknown id.

Bad lines (no tab, a key that is not `NAME#K`, an empty or non-UTF-8 caption)
are left out, and recorded by file and line in the examples' problems for the
validation pass to report; an image left with no caption is left out too. A
split reports the bad lines of its own images and those that name no image.

A spec that is itself an existing file is read as `TOKENS`, so a `:` in a
file name is fine. Image names resolve relative to `image_dir` (--image-dir)
when given, else to the first of the folders in `IMAGE_FOLDERS` that exists
beside the token file (where the official archives unpack), else to the token
file's own folder.
"""

import re
from pathlib import Path

from datasets.examples import CaptionCollector, CaptionExamples
from datasets.validation import MALFORMED_ROW, UNKNOWN_ID, Problem

TOKEN_LINE = re.compile(r"^[^\t#]+#\d+\t")
IMAGE_FOLDERS = ("Flicker8k_Dataset", "Flickr8k_Dataset", "flickr30k-images", "Images")
_SNIFF_CHARACTERS = 65536


def is_flickr_token_file(path: str | Path) -> bool:
    """Whether the first non-empty line of `path` is a `NAME#K<TAB>CAPTION` line."""
    try:
        with Path(path).open(encoding="utf-8-sig", errors="replace") as stream:
            head = stream.read(_SNIFF_CHARACTERS)
    except OSError:
        return False
    for line in head.splitlines():
        if line.strip():
            return bool(TOKEN_LINE.match(line))
    return False


def parse_split_spec(spec: str) -> tuple[Path, Path] | None:
    """(token file, split list) of a `TOKENS:SPLIT_LIST` spec.

    Returns None when `spec` has no `:` or the text before its last `:` is not
    an existing file.

    Raises:
        ValueError: naming the spec when the split list does not exist.
    """
    tokens, separator, split_list = spec.rpartition(":")
    if not separator or not tokens or not Path(tokens).is_file():
        return None
    token_path = Path(tokens)
    candidates = [Path(split_list)]
    if not candidates[0].is_absolute():
        candidates.append(token_path.parent / split_list)
    for candidate in candidates:
        if split_list and candidate.is_file():
            return token_path, candidate
    raise ValueError(
        f"Dataset spec {spec!r}: split list {split_list!r} not found "
        f"(looked for {', '.join(str(candidate) for candidate in candidates)})."
    )


def image_root(token_path: Path, image_dir: str | Path | None) -> Path:
    """Where image names resolve: `image_dir`, an image folder beside the file, or its folder."""
    if image_dir is not None:
        return Path(image_dir)
    for folder in IMAGE_FOLDERS:
        if (token_path.parent / folder).is_dir():
            return token_path.parent / folder
    return token_path.parent


def _read_lines(path: Path, what: str) -> list[str]:
    """The lines of `path`, invalid UTF-8 bytes kept (as surrogates) for the caption checks."""
    try:
        return path.read_text(encoding="utf-8-sig", errors="surrogateescape").splitlines()
    except OSError as error:
        raise ValueError(f"{path}: cannot read {what}: {error}") from error


def read_token_lines(path: Path, root: Path) -> tuple[CaptionCollector, dict[str, str]]:
    """The captions of a token file, each bad line recorded, and each image's path.

    Args:
        path: the token file.
        root: the folder the image names resolve in.

    Returns:
        The collected captions (keyed by image path, in file order) and the path of
        each image name.

    Raises:
        ValueError: naming the file when it cannot be read or has no lines.
    """
    lines = _read_lines(path, "Flickr token file")
    if not any(line.strip() for line in lines):
        raise ValueError(f"{path}: no captions.")
    collector = CaptionCollector()
    paths: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        key, tab, caption = line.partition("\t")
        name, hash_sign, caption_number = key.strip().rpartition("#")
        if not tab:
            detail = f"expected NAME#K<TAB>CAPTION but there is no tab: {line[:80]!r}"
            collector.reject(Problem(None, where, MALFORMED_ROW, detail))
        elif not hash_sign or not name or not re.fullmatch(r"[0-9]+", caption_number):
            detail = f"expected NAME#K (K a caption number such as 0-4) before the tab, got {key!r}"
            collector.reject(Problem(None, where, MALFORMED_ROW, detail))
        else:
            if name not in paths:
                paths[name] = str((root / name).resolve())
            collector.add(paths[name], caption, where)
    return collector, paths


def read_split_list(path: Path, known: dict, token_path: Path) -> tuple[list[str], list[Problem]]:
    """The image names of a split list that are in `known`, in order, each once.

    Returns:
        The names, and a Problem (list file and line) for each name not in `known`.

    Raises:
        ValueError: naming the split list when it cannot be read or names no image.
    """
    names: dict[str, None] = {}
    problems = []
    for number, line in enumerate(_read_lines(path, "split list"), start=1):
        name = line.strip()
        if name and name not in known:
            detail = f"image {name!r} is not in the token file {token_path}"
            problems.append(Problem(None, f"{path} line {number}", UNKNOWN_ID, detail))
        elif name:
            names[name] = None
    if not names and not problems:
        raise ValueError(f"{path}: the split list names no image.")
    return list(names), problems


def read_flickr(
    path: str | Path, image_dir: str | Path | None = None, split_list: str | Path | None = None
) -> CaptionExamples:
    """Reads a Flickr8k/30k token file, or the images of one split list of it.

    Args:
        path: the token file.
        image_dir: folder the image names are relative to (see the module docstring).
        split_list: optional file of image names, one per line, to keep.

    Returns:
        The images with their captions (five each in the official files), and the
        problems of the bad lines (see the module docstring).

    Raises:
        ValueError: naming the file when it cannot be read or leaves no usable
            image. Image files are checked by train.py's validation pass.
    """
    path = Path(path)
    collector, paths = read_token_lines(path, image_root(path, image_dir))
    if split_list is None:
        return collector.examples(str(path))
    split_list = Path(split_list)
    names, problems = read_split_list(split_list, paths, path)
    for problem in problems:
        collector.reject(problem)
    return collector.examples(f"{path}:{split_list}", [paths[name] for name in names])
