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

A question that cannot be used is left out and recorded, by file and record
(`questions[4]`, `annotations[7]`), in the examples' problems for the validation
pass to report: a field missing or invalid, an empty question, a question_id
asked or annotated more than once or not annotated, an annotation on another
image, no non-empty answer. So is an annotation without a valid question_id.
"""

import collections
import json
import re
from pathlib import Path

from datasets.labelled_pairs import LabelledPairs
from datasets.validation import (
    CONFLICTING_ID,
    DUPLICATE_ID,
    EMPTY_TEXT,
    MALFORMED_ROW,
    MISSING_FIELD,
    UNKNOWN_ID,
    Problem,
    require_usable_rows,
    text_problem,
)
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


def _invalid_field(record: dict, name: str, kind: type) -> str | None:
    """What is wrong with `record[name]` when it is not a `kind` (bools are not ints)."""
    value = record.get(name)
    if isinstance(value, kind) and not isinstance(value, bool):
        return None
    return f"no valid {name!r}: {value!r}"


def most_common_answer(answers: list[str]) -> str:
    """The most common normalized answer, ties to the first given; "" when none has a word."""
    normalized = [answer for answer in map(normalize_answer, answers) if answer]
    counts = collections.Counter(normalized)
    best = max(counts.values(), default=0)
    return next((answer for answer in normalized if counts[answer] == best), "")


def _read_annotations(path: Path) -> tuple[dict, dict[object, list], list[Problem]]:
    """The annotations JSON, question id -> [(where, annotation)], and bad annotations."""
    data, annotations = _load_list(path, "annotations")
    by_question: dict[object, list[tuple[str, dict]]] = {}
    problems = []
    for position, annotation in enumerate(annotations):
        where = f"{path} annotations[{position}]"
        if not isinstance(annotation, dict):
            detail = f"not an object: {str(annotation)[:80]!r}"
            problems.append(Problem(None, where, MALFORMED_ROW, detail))
        elif invalid := _invalid_field(annotation, "question_id", (int, str)):
            problems.append(Problem(None, where, MISSING_FIELD, invalid))
        else:
            by_question.setdefault(annotation["question_id"], []).append((where, annotation))
    return data, by_question, problems


def _annotation(where: str, annotation: dict) -> tuple[int, list[str]] | Problem:
    """(image id, answers) of an annotation, or what is wrong with it."""
    invalid = _invalid_field(annotation, "image_id", int)
    answers = annotation.get("answers")
    if invalid:
        return Problem(None, where, MISSING_FIELD, invalid)
    if not isinstance(answers, list) or not answers:
        return Problem(None, where, MISSING_FIELD, "no 'answers' list")
    texts = []
    for index, answer in enumerate(answers):
        text = answer.get("answer") if isinstance(answer, dict) else None
        problem = text_problem(text, "answer")
        if problem and problem[0] != EMPTY_TEXT:  # blank answers count for nothing
            return Problem(None, f"{where}.answers[{index}]", *problem)
        texts.append(text.strip())
    return annotation["image_id"], texts


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


def _question(where: str, question: object) -> tuple[int, str, object] | Problem:
    """(image id, question text, question id) of a question, or what is wrong with it."""
    if not isinstance(question, dict):
        return Problem(None, where, MALFORMED_ROW, f"not an object: {str(question)[:80]!r}")
    for name, kind in (("image_id", int), ("question_id", (int, str))):
        invalid = _invalid_field(question, name, kind)
        if invalid:
            return Problem(None, where, MISSING_FIELD, invalid)
    problem = text_problem(question.get("question"), "question")
    if problem:
        return Problem(None, where, *problem)
    return question["image_id"], question["question"].strip(), question["question_id"]


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
        labels, every answer in `answer_lists`, and the problems of the questions
        and annotations left out (see the module docstring).

    Raises:
        ValueError: naming the file when it cannot be read, is not an object with
            the list 'questions' (or 'annotations'), has no question, or leaves no
            usable question. Image files are checked by the validation pass.
    """
    questions_path, annotations_path = Path(questions_path), Path(annotations_path)
    questions_data, questions = _load_list(questions_path, "questions")
    if not questions:
        raise ValueError(f"{questions_path}: no questions.")
    annotations_data, by_question, problems = _read_annotations(annotations_path)
    subtype = _subtype(questions_path, questions_data, annotations_data)
    folder = image_folder(questions_path, subtype, image_dir)
    parsed = [
        _question(f"{questions_path} questions[{position}]", question)
        for position, question in enumerate(questions)
    ]
    asked = collections.Counter(one[2] for one in parsed if not isinstance(one, Problem))
    image_paths, texts, labels, answer_lists = [], [], [], []
    for position, question in enumerate(parsed):
        where = f"{questions_path} questions[{position}]"
        example = question
        if not isinstance(question, Problem):
            example = _answered(where, question, asked, by_question.get(question[2], []))
        if isinstance(example, Problem):
            problems.append(example)
            continue
        image_id, text, label, answers = example
        image_paths.append(str((folder / f"COCO_{subtype}_{image_id:012d}.jpg").resolve()))
        texts.append(text)
        labels.append(label)
        answer_lists.append(answers)
    source = f"{questions_path}+{annotations_path}"
    require_usable_rows(source, len(image_paths), problems)
    return LabelledPairs(image_paths, texts, labels, source, answer_lists, problems=tuple(problems))


def _answered(
    where: str, question: tuple[int, str, object], asked: collections.Counter, annotated: list
) -> tuple[int, str, str, list[str]] | Problem:
    """(image id, question, label, answers) of a valid question, or what is wrong.

    Args:
        where: the question's position, for messages.
        question: its (image id, text, question id).
        asked: how many questions have each question id.
        annotated: the (position, annotation) pairs of its question id.
    """
    image_id, text, question_id = question
    if asked[question_id] > 1:
        detail = f"question_id {question_id!r} is asked {asked[question_id]} times"
        return Problem(None, where, DUPLICATE_ID, detail)
    if not annotated:
        return Problem(None, where, UNKNOWN_ID, f"no annotation for question_id {question_id!r}")
    if len(annotated) > 1:
        positions = ", ".join(position for position, _ in annotated[:3])
        detail = f"question_id {question_id!r} is annotated {len(annotated)} times: {positions}"
        return Problem(None, where, DUPLICATE_ID, detail)
    annotation_where, annotation = annotated[0]
    found = _annotation(annotation_where, annotation)
    if isinstance(found, Problem):
        return found
    annotated_image, answers = found
    if annotated_image != image_id:
        detail = (
            f"question_id {question_id!r} is on image_id {annotated_image!r} here, but "
            f"{where} puts it on {image_id!r}"
        )
        return Problem(None, annotation_where, CONFLICTING_ID, detail)
    label = most_common_answer(answers)
    if not label:
        detail = f"question_id {question_id!r} has no non-empty answer"
        return Problem(None, annotation_where, EMPTY_TEXT, detail)
    return image_id, text, label, answers
