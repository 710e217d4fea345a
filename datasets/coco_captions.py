"""Reader for COCO-style captions JSON files."""

import json
from pathlib import Path

from datasets.examples import CaptionExamples


def read_coco_captions(path: str | Path, image_dir: str | Path | None = None) -> CaptionExamples:
    """Reads a COCO captions JSON ({"images": [...], "annotations": [...]}).

    Image `file_name`s are resolved relative to `image_dir`, or to the JSON's own
    folder when no `image_dir` is given. Any number of captions per image.

    Raises:
        ValueError: naming the file and the field when the JSON is malformed, an
            annotation points at an unknown image, or an image has no caption.
            Image files are checked by train.py's validation pass.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read COCO captions JSON: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with 'images' and 'annotations'.")
    for field in ("images", "annotations"):
        if not isinstance(data.get(field), list):
            raise ValueError(f"{path}: missing list field {field!r}.")
    root = Path(image_dir) if image_dir is not None else path.parent
    files: dict[object, str] = {}
    for position, image in enumerate(data["images"]):
        if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
            raise ValueError(f"{path}: images[{position}] needs 'id' and 'file_name'.")
        files[image["id"]] = str((root / image["file_name"]).resolve())
    captions: dict[object, list[str]] = {image_id: [] for image_id in files}
    for position, annotation in enumerate(data["annotations"]):
        if not isinstance(annotation, dict):
            raise ValueError(f"{path}: annotations[{position}] is not an object.")
        image_id, caption = annotation.get("image_id"), annotation.get("caption")
        if image_id not in captions:
            raise ValueError(f"{path}: annotations[{position}] has unknown image_id {image_id!r}.")
        if not isinstance(caption, str) or not caption.strip():
            raise ValueError(f"{path}: annotations[{position}] has an empty caption.")
        captions[image_id].append(caption.strip())
    uncaptioned = [image_id for image_id, texts in captions.items() if not texts]
    if uncaptioned:
        raise ValueError(f"{path}: image id {uncaptioned[0]!r} has no caption.")
    image_paths = [files[image_id] for image_id in files]
    return CaptionExamples(image_paths, [captions[image_id] for image_id in files], str(path))
