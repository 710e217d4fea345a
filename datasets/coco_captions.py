"""Reader for COCO-style captions JSON files."""

import json
from pathlib import Path

from datasets.examples import CaptionCollector, CaptionExamples
from datasets.validation import DUPLICATE_ID, MALFORMED_ROW, MISSING_FIELD, UNKNOWN_ID, Problem


def _is_id(value: object) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


def _image_entry_problem(image: object) -> tuple[str, str] | None:
    """(reason, detail) of an `images` entry without a valid `id` and `file_name`."""
    if not isinstance(image, dict):
        return MALFORMED_ROW, f"not an object: {str(image)[:80]!r}"
    if not _is_id(image.get("id")):
        return MISSING_FIELD, f"no valid 'id': {image.get('id')!r}"
    file_name = image.get("file_name")
    if not isinstance(file_name, str) or not file_name.strip():
        return MISSING_FIELD, f"no valid 'file_name': {file_name!r}"
    return None


def read_coco_captions(path: str | Path, image_dir: str | Path | None = None) -> CaptionExamples:
    """Reads a COCO captions JSON ({"images": [...], "annotations": [...]}).

    Image `file_name`s are resolved relative to `image_dir`, or to the JSON's own
    folder when no `image_dir` is given. Any number of captions per image.

    What is wrong in one entry is left out and recorded in the examples' problems,
    named `captions.json images[2]` or `captions.json annotations[3]`: an entry that
    is not an object or lacks a field, an empty caption (only that caption), an
    annotation whose image_id names no usable image, an image id given to two
    different files (the id's images and captions), an image left with no caption.
    Image files are checked by the validation pass.

    Raises:
        ValueError: naming the file when it cannot be read, is not a JSON object
            with the lists 'images' and 'annotations', or leaves no usable image.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read COCO captions JSON: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with 'images' and 'annotations'.")
    for field in ("images", "annotations"):
        if not isinstance(data.get(field), list):
            raise ValueError(f"{path}: missing list field {field!r}.")
    root = Path(image_dir) if image_dir is not None else path.parent
    collector = CaptionCollector()
    entries: dict[object, list[tuple[str, str]]] = {}  # id -> (where, file) of each entry
    for position, image in enumerate(data["images"]):
        where = f"{path} images[{position}]"
        problem = _image_entry_problem(image)
        if problem:
            collector.reject(Problem(None, where, *problem))
            continue
        file = str((root / image["file_name"]).resolve())
        entries.setdefault(image["id"], []).append((where, file))
    files: dict[object, str] = {}
    for image_id, found in entries.items():
        names = list(dict.fromkeys(file for _, file in found))
        if len(names) == 1:  # an entry repeated with the same file loses nothing
            files[image_id] = names[0]
            collector.add_image(names[0], found[0][0])
            continue
        detail = f"id {image_id!r} names {len(names)} different files: {', '.join(names[:3])}"
        for where, _ in found:
            collector.reject(Problem(None, where, DUPLICATE_ID, detail))
    for position, annotation in enumerate(data["annotations"]):
        where = f"{path} annotations[{position}]"
        image_id = annotation.get("image_id") if isinstance(annotation, dict) else None
        if not isinstance(annotation, dict):
            detail = f"not an object: {str(annotation)[:80]!r}"
            collector.reject(Problem(None, where, MALFORMED_ROW, detail))
        elif _is_id(image_id) and image_id in files:
            collector.add(files[image_id], annotation.get("caption"), where)
        elif _is_id(image_id) and image_id in entries:
            detail = f"caption of image_id {image_id!r}, which names several files"
            collector.reject(Problem(None, where, DUPLICATE_ID, detail))
        else:
            detail = f"image_id {image_id!r} names no usable 'images' entry"
            collector.reject(Problem(None, where, UNKNOWN_ID, detail))
    return collector.examples(str(path))
