"""Reader for VQA v2 (a questions JSON and its annotations JSON, over COCO images).

Spec forms (for --dataset, --val-dataset and --test-dataset of the vqa task):

- `QUESTIONS.json`: the annotations file is found by the official naming,
  `OpenEnded_`/`MultipleChoice_` dropped and `questions` made `annotations`
  (`v2_OpenEnded_mscoco_train2014_questions.json` ->
  `v2_mscoco_train2014_annotations.json`), beside the questions file or in an
  `Annotations/` folder beside its folder (the official `Questions/` +
  `Annotations/` layout).
- `QUESTIONS.json+ANNOTATIONS.json`: the annotations file named explicitly;
  the text after the last `+` is the annotations file, and a relative one that
  does not exist from the working folder is looked up beside the questions file.

A `.json` is taken for a VQA v2 questions file when its opening holds a
`"questions"` key. Images follow the COCO naming `COCO_<subtype>_<image_id:012d>.jpg`,
the subtype (`train2014`, `val2014`) taken from the questions' `data_subtype`
field, else the annotations', else the questions file name. They are looked
up in `image_dir/<subtype>/` when that folder exists, else in `image_dir`
itself (so one --image-dir holding `train2014/` and `val2014/` serves every
split); with no `image_dir`, in a `<subtype>/` folder beside the questions
file, else that file's own folder.

The training label of a question is the most common of its human answers
after `evaluation.vqa.normalize_answer`, ties going to the answer given first.
All the answers are kept in `LabelledPairs.answer_lists`, so evaluation scores
the soft VQA accuracy `min(#humans who gave the answer / 3, 1)`.
"""

import collections
import json
import re
from pathlib import Path

from datasets.labelled_pairs import LabelledPairs
from evaluation.vqa import normalize_answer

_SNIFF_CHARACTERS = 65536
_SUBTYPE = re.compile(r"(?:train|val|test-dev|test)\d{4}")


def is_vqa_v2_questions(path: str | Path) -> bool:
    """Whether `path` is a `.json` whose opening holds a `"questions"` key."""
    path = Path(path)
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as stream:
            head = stream.read(_SNIFF_CHARACTERS)
    except OSError:
        return False
    return head.lstrip().startswith("{") and '"questions"' in head


def annotations_name(questions_name: str) -> str:
    """The official annotations file name of a questions file name."""
    name = re.sub(r"(?:OpenEnded|MultipleChoice)_", "", questions_name)
    return name.replace("questions", "annotations")


def parse_vqa_v2_spec(spec: str) -> tuple[Path, Path] | None:
    """(questions, annotations) of a VQA v2 spec; None when `spec` is not one.

    Raises:
        ValueError: naming the spec and the paths looked at when the questions
            file is found but its annotations file is not.
    """
    if Path(spec).is_file():
        questions = Path(spec)
        if not is_vqa_v2_questions(questions):
            return None
        name = annotations_name(questions.name)
        candidates = []
        if name != questions.name:
            candidates = [questions.parent / name, questions.parent.parent / "Annotations" / name]
    else:
        head, plus, tail = spec.rpartition("+")
        if not plus or not is_vqa_v2_questions(head):
            return None
        questions = Path(head)
        candidates = [Path(tail)]
        if tail and not candidates[0].is_absolute():
            candidates.append(questions.parent / tail)
    for candidate in candidates:
        if candidate.name and candidate.is_file():
            return questions, candidate
    looked_for = ", ".join(str(candidate) for candidate in candidates) or "no official name"
    raise ValueError(
        f"Dataset spec {spec!r}: VQA v2 annotations file not found (looked for {looked_for}); "
        "name it as QUESTIONS.json+ANNOTATIONS.json."
    )


def _load_list(path: Path, field: str) -> tuple[dict, list]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read VQA v2 JSON: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get(field), list):
        raise ValueError(f"{path}: expected a JSON object with a list field {field!r}.")
    return data, data[field]


def _field(path: Path, where: str, record: object, name: str, kind: type) -> object:
    """`record[name]`, checked to be a `kind` (a non-empty one for strings)."""
    value = record.get(name) if isinstance(record, dict) else None
    valid = isinstance(value, kind) and not isinstance(value, bool)
    if not valid or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{path}: {where} has no valid {name!r}: {value!r}")
    return value


def most_common_answer(answers: list[str]) -> str:
    """The most common normalized answer, ties to the first given; "" when none has a word."""
    normalized = [answer for answer in map(normalize_answer, answers) if answer]
    counts = collections.Counter(normalized)
    best = max(counts.values(), default=0)
    return next((answer for answer in normalized if counts[answer] == best), "")


def _read_annotations(path: Path) -> tuple[dict, dict[object, tuple[int, list[str]]]]:
    """The annotations JSON and question id -> (image id, answers)."""
    data, annotations = _load_list(path, "annotations")
    by_question: dict[object, tuple[int, list[str]]] = {}
    for position, annotation in enumerate(annotations):
        where = f"annotations[{position}]"
        question_id = _field(path, where, annotation, "question_id", (int, str))
        image_id = _field(path, where, annotation, "image_id", int)
        answers = annotation.get("answers")
        if not isinstance(answers, list) or not answers:
            raise ValueError(f"{path}: {where} has no 'answers' list.")
        texts = []
        for index, answer in enumerate(answers):
            text = answer.get("answer") if isinstance(answer, dict) else None
            if not isinstance(text, str):
                raise ValueError(
                    f"{path}: {where}.answers[{index}] has no 'answer' string: {answer!r}"
                )
            texts.append(text.strip())
        if question_id in by_question:
            raise ValueError(f"{path}: {where} repeats question_id {question_id!r}.")
        by_question[question_id] = (image_id, texts)
    return data, by_question


def _subtype(questions_path: Path, questions_data: dict, annotations_data: dict) -> str:
    for data in (questions_data, annotations_data):
        subtype = data.get("data_subtype")
        if isinstance(subtype, str) and subtype.strip():
            return subtype.strip()
    match = _SUBTYPE.search(questions_path.name)
    if match is None:
        raise ValueError(
            f"{questions_path}: cannot tell the COCO image subtype (such as train2014): no "
            "'data_subtype' field and none in the file name."
        )
    return match.group(0)


def image_folder(questions_path: Path, subtype: str, image_dir: str | Path | None) -> Path:
    """Where the COCO images of `subtype` are (see the module docstring)."""
    root = Path(image_dir) if image_dir is not None else questions_path.parent
    if (root / subtype).is_dir():
        return root / subtype
    return root


def read_vqa_v2(
    questions_path: str | Path, annotations_path: str | Path, image_dir: str | Path | None = None
) -> LabelledPairs:
    """Reads VQA v2 questions with their annotations, one example per question.

    Args:
        questions_path: `{"questions": [{"image_id", "question", "question_id"}]}`.
        annotations_path: `{"annotations": [{"question_id", "image_id", "answers":
            [{"answer"}, ...]}]}`.
        image_dir: folder of the COCO images (see the module docstring).

    Returns:
        LabelledPairs with the questions as texts, the most common answer as
        labels and every answer in `answer_lists`.

    Raises:
        ValueError: naming the file and the record (`questions[i]`,
            `annotations[i]`) that is malformed, a question with no annotation
            or another image in it. Image files are checked by the validation pass.
    """
    questions_path, annotations_path = Path(questions_path), Path(annotations_path)
    questions_data, questions = _load_list(questions_path, "questions")
    if not questions:
        raise ValueError(f"{questions_path}: no questions.")
    annotations_data, by_question = _read_annotations(annotations_path)
    subtype = _subtype(questions_path, questions_data, annotations_data)
    folder = image_folder(questions_path, subtype, image_dir)
    image_paths, texts, labels, answer_lists = [], [], [], []
    for position, question in enumerate(questions):
        where = f"questions[{position}]"
        image_id = _field(questions_path, where, question, "image_id", int)
        text = _field(questions_path, where, question, "question", str)
        question_id = _field(questions_path, where, question, "question_id", (int, str))
        if question_id not in by_question:
            raise ValueError(
                f"{annotations_path}: no annotation for question_id {question_id!r} "
                f"({where} of {questions_path})."
            )
        annotated_image, answers = by_question[question_id]
        if annotated_image != image_id:
            raise ValueError(
                f"{annotations_path}: question_id {question_id!r} is on image_id "
                f"{annotated_image!r}, but {where} of {questions_path} puts it on {image_id!r}."
            )
        label = most_common_answer(answers)
        if not label:
            raise ValueError(
                f"{annotations_path}: question_id {question_id!r} has no non-empty answer."
            )
        image_paths.append(str((folder / f"COCO_{subtype}_{image_id:012d}.jpg").resolve()))
        texts.append(text.strip())
        labels.append(label)
        answer_lists.append(answers)
    source = f"{questions_path}+{annotations_path}"
    return LabelledPairs(image_paths, texts, labels, source, answer_lists)
