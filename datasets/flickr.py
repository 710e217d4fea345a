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

  Every listed image must be in the token file and on disk.

A spec that is itself an existing file is read as `TOKENS`, so a `:` in a
file name is fine. Image names resolve relative to `image_dir` (--image-dir)
when given, else to the first of the folders in `IMAGE_FOLDERS` that exists
beside the token file (where the official archives unpack), else to the token
file's own folder.
"""

import re
from pathlib import Path

from datasets.examples import CaptionExamples

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


def read_token_lines(path: Path) -> dict[str, tuple[int, list[str]]]:
    """Image name -> (line number of its first caption, its captions), in file order.

    Raises:
        ValueError: naming the file and line of a line without a tab, a key that
            is not `NAME#K`, or an empty caption; or when the file has no captions.
    """
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read Flickr token file: {error}") from error
    images: dict[str, tuple[int, list[str]]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        key, tab, caption = line.partition("\t")
        if not tab:
            raise ValueError(
                f"{path}: line {number}: expected NAME#K<TAB>CAPTION but there is no tab: "
                f"{line[:80]!r}"
            )
        name, hash_sign, caption_number = key.strip().rpartition("#")
        if not hash_sign or not name or not re.fullmatch(r"[0-9]+", caption_number):
            raise ValueError(
                f"{path}: line {number}: expected NAME#K (K a caption number such as 0-4) "
                f"before the tab, got {key!r}"
            )
        if not caption.strip():
            raise ValueError(f"{path}: line {number}: empty caption for {key.strip()!r}")
        images.setdefault(name, (number, []))[1].append(caption.strip())
    if not images:
        raise ValueError(f"{path}: no captions.")
    return images


def read_split_list(path: Path, known: dict, token_path: Path) -> list[str]:
    """The image names of a split list, in order, each once.

    Raises:
        ValueError: naming the split list and line of an image not in the token
            file, or when the list names no image.
    """
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read split list: {error}") from error
    names: dict[str, None] = {}
    for number, line in enumerate(lines, start=1):
        name = line.strip()
        if not name:
            continue
        if name not in known:
            raise ValueError(
                f"{path}: line {number}: image {name!r} is not in the token file {token_path}"
            )
        names[name] = None
    if not names:
        raise ValueError(f"{path}: the split list names no image.")
    return list(names)


def read_flickr(
    path: str | Path, image_dir: str | Path | None = None, split_list: str | Path | None = None
) -> CaptionExamples:
    """Reads a Flickr8k/30k token file, or the images of one split list of it.

    Args:
        path: the token file.
        image_dir: folder the image names are relative to (see the module docstring).
        split_list: optional file of image names, one per line, to keep.

    Returns:
        The images with their captions (five each in the official files).

    Raises:
        ValueError: naming the file and line of a malformed line or an unknown
            split-list image. Image files are checked by train.py's validation pass.
    """
    path = Path(path)
    images = read_token_lines(path)
    root = image_root(path, image_dir)
    if split_list is not None:
        split_list = Path(split_list)
        names = read_split_list(split_list, images, path)
        source = f"{path}:{split_list}"
        image_paths = [str((root / name).resolve()) for name in names]
        return CaptionExamples(image_paths, [images[name][1] for name in names], source)
    return CaptionExamples(
        [str((root / name).resolve()) for name in images],
        [captions for _, captions in images.values()],
        str(path),
    )
