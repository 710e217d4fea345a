"""VQA v2 questions + annotations JSON: labels, kept answers, spec forms, images, errors."""

import json
import re

import pytest
from PIL import Image

from datasets.checked_splits import checked_split
from datasets.labelled_pairs import LabelledPairs
from datasets.sources import load_splits, read_vqa_file
from datasets.validation import (
    CONFLICTING_ID,
    DUPLICATE_ID,
    EMPTY_TEXT,
    MISSING_FIELD,
    UNKNOWN_ID,
)
from datasets.vqa_v2 import annotations_name, most_common_answer, read_vqa_v2
from tests.datasets.test_checked_splits import skip_report

QUESTIONS = "v2_OpenEnded_mscoco_train2014_questions.json"
ANNOTATIONS = "v2_mscoco_train2014_annotations.json"


def write_image(path, size=(12, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 90, 200)).save(path, format="JPEG")
    return path


def ten(*counted):
    """Ten answers from (answer, count) pairs, in the order given."""
    answers = [answer for answer, count in counted for _ in range(count)]
    assert len(answers) == 10
    return answers


def write_vqa(
    folder,
    questions,
    subtype="train2014",
    questions_name=QUESTIONS,
    annotations_name=ANNOTATIONS,
    images=True,
    subtype_field=True,
):
    """questions: (question_id, image_id, question, ten answers); images in folder/<subtype>/."""
    folder.mkdir(parents=True, exist_ok=True)
    header = {"data_subtype": subtype} if subtype_field else {}
    question_records = [
        {"image_id": image_id, "question": text, "question_id": question_id}
        for question_id, image_id, text, _ in questions
    ]
    annotation_records = [
        {
            "question_id": question_id,
            "image_id": image_id,
            "answers": [
                {"answer": answer, "answer_confidence": "yes", "answer_id": index + 1}
                for index, answer in enumerate(answers)
            ],
            "multiple_choice_answer": answers[0],
            "answer_type": "other",
        }
        for question_id, image_id, _, answers in questions
    ]
    (folder / questions_name).write_text(
        json.dumps({"info": {}, "task_type": "Open-Ended", **header, "questions": question_records})
    )
    (folder / annotations_name).write_text(
        json.dumps({"info": {}, **header, "annotations": annotation_records})
    )
    if images:
        for _, image_id, _, _ in questions:
            write_image(folder / subtype / f"COCO_{subtype}_{image_id:012d}.jpg")
    return folder / questions_name


SAMPLE = [
    (1001, 9, "What color is the bus?", ten(("red", 2), ("Blue", 5), ("blue.", 3))),
    (1002, 9, "How many dogs?", ten(("2", 4), ("two", 4), ("3", 2))),
    (1003, 25, "Is it raining?", ten(("no", 7), ("yes", 3))),
]


def test_questions_with_the_annotations_beside_them(tmp_path):
    path = write_vqa(tmp_path / "vqa", SAMPLE)
    pairs = read_vqa_file(path)
    folder = (tmp_path / "vqa" / "train2014").resolve()
    assert pairs.image_paths == [
        str(folder / "COCO_train2014_000000000009.jpg"),
        str(folder / "COCO_train2014_000000000009.jpg"),
        str(folder / "COCO_train2014_000000000025.jpg"),
    ]
    assert pairs.texts == ["What color is the bus?", "How many dogs?", "Is it raining?"]
    # The most common normalized answer; "2" and "two" tie at 4 and "2" came first.
    assert pairs.labels == ["blue", "2", "no"]
    assert pairs.answer_lists == [answers for _, _, _, answers in SAMPLE]
    assert pairs.source == f"{path}+{tmp_path / 'vqa' / ANNOTATIONS}"


def test_most_common_answer_normalizes_and_breaks_ties_by_first_occurrence():
    assert most_common_answer(["Yes", "no", "yes.", "no", " YES "]) == "yes"
    assert most_common_answer(["b", "a", "a", "b"]) == "b"
    assert most_common_answer(["a", "b", "b", "a"]) == "a"
    assert most_common_answer(["", "  ", "."]) == ""


def test_official_annotation_names():
    assert annotations_name(QUESTIONS) == ANNOTATIONS
    assert annotations_name("v2_OpenEnded_mscoco_val2014_questions.json") == (
        "v2_mscoco_val2014_annotations.json"
    )
    assert annotations_name("MultipleChoice_mscoco_train2014_questions.json") == (
        "mscoco_train2014_annotations.json"
    )


def test_annotations_in_the_official_annotations_folder(tmp_path):
    path = write_vqa(tmp_path / "Questions", SAMPLE)
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Questions" / ANNOTATIONS).rename(tmp_path / "Annotations" / ANNOTATIONS)
    pairs = read_vqa_file(path)
    assert pairs.source.endswith(str(tmp_path / "Annotations" / ANNOTATIONS))
    assert pairs.labels == ["blue", "2", "no"]


def test_explicit_questions_plus_annotations_spec(tmp_path):
    path = write_vqa(tmp_path, SAMPLE, questions_name="q.json", annotations_name="answers.json")
    with pytest.raises(ValueError, match="annotations file not found") as error:
        read_vqa_file(path)
    assert "QUESTIONS.json+ANNOTATIONS.json" in str(error.value)
    assert str(path) in str(error.value) and "no official name" in str(error.value)
    for annotations in ("answers.json", str(tmp_path / "answers.json")):
        pairs = read_vqa_file(f"{path}+{annotations}")
        assert pairs.labels == ["blue", "2", "no"] and len(pairs.answer_lists[0]) == 10
    with pytest.raises(ValueError, match=r"annotations file not found .*nothing.json"):
        read_vqa_file(f"{path}+nothing.json")


def test_subtype_from_the_file_name_and_images_in_image_dir(tmp_path):
    path = write_vqa(
        tmp_path / "meta",
        SAMPLE,
        subtype="val2014",
        questions_name="v2_OpenEnded_mscoco_val2014_questions.json",
        annotations_name="v2_mscoco_val2014_annotations.json",
        images=False,
        subtype_field=False,
    )
    for image_id in (9, 25):
        write_image(tmp_path / "coco" / "val2014" / f"COCO_val2014_{image_id:012d}.jpg")
        write_image(tmp_path / "flat" / f"COCO_val2014_{image_id:012d}.jpg")
    with pytest.raises(ValueError, match=r"none of its 3 image files exists .*COCO_val2014_0+9"):
        checked_split(read_vqa_file(path), "error")
    in_subfolder = read_vqa_file(path, image_dir=tmp_path / "coco")
    assert in_subfolder.image_paths[2] == str(
        (tmp_path / "coco" / "val2014" / "COCO_val2014_000000000025.jpg").resolve()
    )
    flat = read_vqa_file(path, image_dir=tmp_path / "flat")
    flat_image = tmp_path / "flat" / "COCO_val2014_000000000009.jpg"
    assert flat.image_paths[0] == str(flat_image.resolve())


def test_unknown_subtype_is_an_error(tmp_path):
    path = write_vqa(
        tmp_path, SAMPLE, questions_name="questions.json", annotations_name="annotations.json",
        subtype_field=False,
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"questions.json: cannot tell the COCO image subtype"):
        read_vqa_file(path)


def edited(tmp_path, edit):
    """Writes SAMPLE, then lets `edit` change the (questions, annotations) JSON objects."""
    path = write_vqa(tmp_path, SAMPLE)
    questions = json.loads(path.read_text())
    annotations = json.loads((tmp_path / ANNOTATIONS).read_text())
    edit(questions, annotations)
    path.write_text(json.dumps(questions))
    (tmp_path / ANNOTATIONS).write_text(json.dumps(annotations))
    return path


def _drop_annotation(questions, annotations):
    del annotations["annotations"][1]


def _other_image(questions, annotations):
    annotations["annotations"][2]["image_id"] = 9


def _empty_question(questions, annotations):
    questions["questions"][1]["question"] = "  "


def _string_image_id(questions, annotations):
    questions["questions"][0]["image_id"] = "9"


def _no_answers(questions, annotations):
    annotations["annotations"][0]["answers"] = []


def _answer_not_a_string(questions, annotations):
    annotations["annotations"][0]["answers"][3] = {"answer": 3}


def _blank_answers(questions, annotations):
    annotations["annotations"][2]["answers"] = [{"answer": " "}] * 10


def _repeated_question(questions, annotations):
    annotations["annotations"][2]["question_id"] = 1001


def _question_asked_twice(questions, annotations):
    questions["questions"][1]["question_id"] = 1001


def _annotation_without_question_id(questions, annotations):
    annotations["annotations"].append({"image_id": 9, "answers": [{"answer": "x"}]})


def _no_questions_list(questions, annotations):
    questions["questions"] = {}


def _no_questions(questions, annotations):
    questions["questions"] = []


def _no_usable_question(questions, annotations):
    for question in questions["questions"]:
        question["question"] = ""


@pytest.mark.parametrize(
    "edit, message",
    [
        (_no_questions_list, r"expected a JSON object with a list field 'questions'"),
        (_no_questions, r"no questions"),
        (_no_usable_question, r"no usable row: 3 problems, the first .*questions\[0\]: empty "
         r"text: question is ''"),
    ],
)  # fmt: skip
def test_whole_file_errors_name_the_questions_file(tmp_path, edit, message):
    path = edited(tmp_path, edit)
    with pytest.raises(ValueError, match=message) as error:
        read_vqa_v2(path, tmp_path / ANNOTATIONS)
    assert str(error.value).startswith(f"{path}")


@pytest.mark.parametrize(
    "edit, file, where, reason, detail, kept",
    [
        (_drop_annotation, QUESTIONS, "questions[1]", UNKNOWN_ID,
         "no annotation for question_id 1002", [0, 2]),
        (_other_image, ANNOTATIONS, "annotations[2]", CONFLICTING_ID,
         "question_id 1003 is on image_id 9 here, but .*questions[2] puts it on 25", [0, 1]),
        (_empty_question, QUESTIONS, "questions[1]", EMPTY_TEXT, "question is '  '", [0, 2]),
        (_string_image_id, QUESTIONS, "questions[0]", MISSING_FIELD, "no valid 'image_id': '9'",
         [1, 2]),
        (_no_answers, ANNOTATIONS, "annotations[0]", MISSING_FIELD, "no 'answers' list", [1, 2]),
        (_answer_not_a_string, ANNOTATIONS, "annotations[0].answers[3]", MISSING_FIELD,
         "answer is 3 (int), not a string", [1, 2]),
        (_blank_answers, ANNOTATIONS, "annotations[2]", EMPTY_TEXT,
         "question_id 1003 has no non-empty answer", [0, 1]),
        (_repeated_question, QUESTIONS, "questions[0]", DUPLICATE_ID,
         "question_id 1001 is annotated 2 times: .*annotations[0], .*annotations[2]", [1]),
        (_question_asked_twice, QUESTIONS, "questions[0]", DUPLICATE_ID,
         "question_id 1001 is asked 2 times", [2]),
        (_annotation_without_question_id, ANNOTATIONS, "annotations[3]", MISSING_FIELD,
         "no valid 'question_id': None", [0, 1, 2]),
    ],
)  # fmt: skip
def test_a_bad_record_is_reported_and_only_its_question_is_left_out(
    tmp_path, edit, file, where, reason, detail, kept
):
    path = edited(tmp_path, edit)
    pairs = read_vqa_v2(path, tmp_path / ANNOTATIONS)
    assert pairs.texts == [SAMPLE[index][2] for index in kept]
    assert pairs.labels == [["blue", "2", "no"][index] for index in kept]
    checked, report = skip_report(pairs)
    assert checked.texts == pairs.texts and checked.answer_lists == pairs.answer_lists
    assert f"{reason}: " in report and f"{tmp_path / file} {where}" in report
    message = rf"{re.escape(f'{tmp_path / file} {where}')}: {reason}: {re.escape(detail)}"
    with pytest.raises(ValueError, match=message.replace(r"\.\*", ".*")):
        checked_split(pairs, "error")


def test_a_missing_image_is_named(tmp_path):
    path = write_vqa(tmp_path, SAMPLE)
    (tmp_path / "train2014" / "COCO_train2014_000000000025.jpg").unlink()
    with pytest.raises(ValueError, match=r"COCO_train2014_000000000025.jpg: missing file"):
        checked_split(read_vqa_file(path), "error")


def test_load_splits_holds_out_images_and_keeps_their_answer_lists(tmp_path):
    questions = [
        (index, image_id, f"question {index}?", ten((f"answer {index % 3}", 6), ("other", 4)))
        for index, image_id in enumerate([1, 1, 2, 3, 3, 4, 5, 6, 7, 8, 9, 10])
    ]
    path = write_vqa(tmp_path, questions)
    splits = load_splits("vqa", str(path), seed=0)
    assert len(splits["train"]) + len(splits["val"]) == 12
    for part in (splits["train"], splits["val"]):
        assert len(part.answer_lists) == len(part)
        for text, label, answers in zip(part.texts, part.labels, part.answer_lists, strict=True):
            index = int(text.split()[1].rstrip("?"))
            assert label == f"answer {index % 3}"
            assert answers == questions[index][3]
    test = load_splits("vqa", str(path), test_dataset=f"{path}+{ANNOTATIONS}")["test"]
    assert test.answer_lists == [answers for _, _, _, answers in questions]


def test_a_json_that_is_not_vqa_v2_lists_every_accepted_form(tmp_path):
    (tmp_path / "captions.json").write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(ValueError, match="Unsupported dataset") as error:
        load_splits("vqa", str(tmp_path / "captions.json"))
    message = str(error.value)
    for form in ("'shapes'", "VQA v2 questions .json", "QUESTIONS.json+ANNOTATIONS.json",
                 ".csv/.jsonl with image,question,answer"):  # fmt: skip
        assert form in message


def test_labelled_pairs_carry_answer_lists_through_subset_and_check_their_count():
    pairs = LabelledPairs(["/a", "/b", "/c"], ["x", "y", "z"], ["1", "2", "3"], "s",
                          answer_lists=[["1", "1"], ["2"], ["3", "4"]])  # fmt: skip
    assert pairs.subset([2, 0], "!").answer_lists == [["3", "4"], ["1", "1"]]
    assert pairs.subset(iter([1]), "!").answer_lists == [["2"]]
    assert LabelledPairs(["/a"], ["x"], ["1"], "s").subset([0], "!").answer_lists is None
    with pytest.raises(ValueError, match=r"v2.json: 1 labels but 2 answer lists"):
        LabelledPairs(["/a"], ["x"], ["1"], "v2.json", answer_lists=[["1"], ["2"]])
