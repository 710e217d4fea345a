import math

import pytest

from evaluation.captioning import (
    caption_metrics,
    captioning_baseline,
    most_frequent_caption,
    normalize_caption,
)

METRIC_KEYS = ["bleu_1", "bleu_2", "bleu_3", "bleu_4", "cider_d"]

# Captions of at least four words, all different, so that every n-gram order
# has n-grams that are rare across images (CIDEr-D's IDF is 0 for n-grams
# that every image has).
CORPUS = {
    "bus": ["a red bus drives down the street"],
    "cat": ["a cat sleeps on a blue sofa"],
    "dog": ["two dogs play with a ball in the snow"],
    "kite": ["children fly a kite on the beach"],
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A Cat.", "a cat"),
        ("  two\tdogs\n play  ", "two dogs play"),
        ("The dog's ball", "the dogs ball"),
        ("don\u2019t stop", "dont stop"),
        ("black-and-white photo", "black and white photo"),
        ("A man, a plan; a canal: Panama!?", "a man a plan a canal panama"),
        ("\u00abCaf\u00e9\u00bb \u2014 3 cups", "caf\u00e9 3 cups"),
        ("...", ""),
        ("", ""),
    ],
)
def test_normalize_caption(text, expected):
    assert normalize_caption(text) == expected


def test_normalize_caption_rejects_non_string():
    with pytest.raises(ValueError, match="NoneType"):
        normalize_caption(None)


def test_identical_prediction_and_reference_score_one():
    references = {key: [caption] for key, (caption,) in CORPUS.items()}
    predictions = {key: caption for key, (caption,) in CORPUS.items()}

    metrics = caption_metrics(references, predictions)

    assert list(metrics) == METRIC_KEYS
    for n in range(1, 5):
        assert metrics[f"bleu_{n}"] == pytest.approx(1.0, abs=1e-6)
    assert all(isinstance(value, float) for value in metrics.values())


def test_bleu_hand_computed_corpus_level_with_closest_reference_length():
    references = {
        1: ["The cat sat on the mat.", "a cat is sitting on a mat today"],
        2: ["a dog runs in the park", "the dog is running fast"],
    }
    predictions = {1: "A cat sat on the mat", 2: "the the dog runs"}
    # Image 1: "a cat sat on the mat", 6 words; reference lengths 6 and 8 -> closest 6.
    #   1-grams a cat sat on the mat: all in a reference (clip "a" at 2, "the" at 2) -> 6/6
    #   2-grams a-cat cat-sat sat-on on-the the-mat: all in a reference -> 5/5
    #   3-grams "a cat sat" no; "cat sat on", "sat on the", "on the mat" yes -> 3/4
    #   4-grams "a cat sat on" no; "cat sat on the", "sat on the mat" yes -> 2/3
    # Image 2: "the the dog runs", 4 words; reference lengths 6 and 5 -> closest 5.
    #   1-grams: "the" x2 clipped to 1 (max count in one reference), dog, runs -> 3/4
    #   2-grams "the the" no; "the dog" (ref 2), "dog runs" (ref 1) yes -> 2/3
    #   3-grams "the the dog", "the dog runs" no -> 0/2
    #   4-grams "the the dog runs" no -> 0/1
    # Corpus level: counts are summed over images before dividing.
    #   p1 = 9/10, p2 = 7/8, p3 = 3/6, p4 = 2/4
    #   prediction length c = 6 + 4 = 10, reference length r = 6 + 5 = 11
    #   brevity penalty = exp(1 - r / c) = exp(-0.1)
    precisions = [9 / 10, 7 / 8, 3 / 6, 2 / 4]
    brevity_penalty = math.exp(1 - 11 / 10)
    expected = {
        f"bleu_{n}": brevity_penalty * math.prod(precisions[:n]) ** (1 / n) for n in range(1, 5)
    }

    metrics = caption_metrics(references, predictions)

    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-6), name


def test_bleu_is_corpus_level_not_a_mean_of_images():
    references = {1: ["a b c d e f"], 2: ["x z"]}
    predictions = {1: "a b c d e f", 2: "x y"}
    # Pooled unigram precision (6 + 1) / (6 + 2) = 0.875, lengths equal so no penalty;
    # the mean of per-image BLEU-1 would be (1 + 0.5) / 2 = 0.75.
    metrics = caption_metrics(references, predictions)
    assert metrics["bleu_1"] == pytest.approx(7 / 8, abs=1e-6)


def test_cider_d_perfect_caption_beats_wrong_caption():
    # Every image has three identical references; the prediction equals them.
    references = {key: caption * 3 for key, caption in CORPUS.items()}
    perfect = {key: caption for key, (caption,) in CORPUS.items()}
    keys = list(CORPUS)
    wrong = {key: CORPUS[keys[(position + 1) % len(keys)]][0] for position, key in enumerate(keys)}

    perfect_score = caption_metrics(references, perfect)["cider_d"]
    wrong_score = caption_metrics(references, wrong)["cider_d"]

    assert perfect_score == pytest.approx(10.0, abs=1e-6)
    assert wrong_score < 0.5 * perfect_score


def test_cider_d_penalizes_length_and_rewards_partial_overlap():
    references = {key: caption * 2 for key, caption in CORPUS.items()}
    partial = {key: " ".join(caption.split()[:4]) for key, (caption,) in CORPUS.items()}
    perfect = {key: caption for key, (caption,) in CORPUS.items()}

    partial_score = caption_metrics(references, partial)["cider_d"]

    assert 0.0 < partial_score < caption_metrics(references, perfect)["cider_d"]


def test_metrics_ignore_case_and_punctuation():
    references = {key: caption for key, caption in CORPUS.items()}
    plain = {key: caption for key, (caption,) in CORPUS.items()}
    shouted = {key: caption.upper().replace(" ", " , ") + "!" for key, (caption,) in CORPUS.items()}

    assert caption_metrics(references, shouted) == caption_metrics(references, plain)


def test_empty_predictions_score_zero():
    references = {key: caption for key, caption in CORPUS.items()}
    metrics = caption_metrics(references, dict.fromkeys(CORPUS, ""))
    assert metrics == dict.fromkeys(METRIC_KEYS, 0.0)


def test_one_empty_prediction_is_allowed():
    references = {key: caption for key, caption in CORPUS.items()}
    predictions = {key: caption for key, (caption,) in CORPUS.items()}
    predictions["dog"] = ""

    metrics = caption_metrics(references, predictions)

    assert 0.0 < metrics["bleu_4"] < 1.0
    assert 0.0 < metrics["cider_d"] < 10.0


def test_missing_prediction_key_raises_naming_it():
    with pytest.raises(ValueError, match=r"no caption for image key\(s\) 'dog'"):
        caption_metrics({"cat": ["a cat"], "dog": ["a dog"]}, {"cat": "a cat"})


def test_extra_prediction_key_raises_naming_it():
    with pytest.raises(ValueError, match=r"image key\(s\) 7 that are not in `references`"):
        caption_metrics({"cat": ["a cat"]}, {"cat": "a cat", 7: "a dog"})


def test_image_without_references_raises_naming_it():
    with pytest.raises(ValueError, match=r"`references\['dog'\]` has no reference captions"):
        caption_metrics({"cat": ["a cat"], "dog": []}, {"cat": "a cat", "dog": "a dog"})


@pytest.mark.parametrize(
    ("references", "predictions", "message"),
    [
        ({}, {}, "`references` is empty"),
        ({"cat": "a cat"}, {"cat": "a cat"}, r"`references\['cat'\]` must be a sequence"),
        ({"cat": ["a cat", "?!"]}, {"cat": "a cat"}, r"`references\['cat'\]\[1\]` has no words"),
        ({"cat": ["a cat"]}, {"cat": None}, r"`predictions\['cat'\]` must be a string"),
        ([["a cat"]], {0: "a cat"}, "`references` must be a mapping"),
    ],
)
def test_bad_inputs_raise(references, predictions, message):
    with pytest.raises(ValueError, match=message):
        caption_metrics(references, predictions)


def test_most_frequent_caption_counts_after_normalization():
    captions = ["A dog runs.", "a cat", "a dog runs", "A DOG RUNS!", "a cat", "a bird"]
    assert most_frequent_caption(captions) == "a dog runs"


def test_most_frequent_caption_breaks_ties_by_text_whatever_the_order():
    captions = ["b b", "a a", "c c", "B B", "A A.", "c c"]
    assert most_frequent_caption(captions) == "a a"
    assert most_frequent_caption(reversed(captions)) == "a a"


def test_most_frequent_caption_skips_empty_and_rejects_no_words():
    assert most_frequent_caption(["...", "!", "a cat"]) == "a cat"
    with pytest.raises(ValueError, match="no caption with a word"):
        most_frequent_caption(["", "?"])


def test_captioning_baseline_predicts_the_most_frequent_caption_everywhere():
    train_captions = ["A cat sleeps on a blue sofa.", "a cat sleeps on a blue sofa", "a dog"]
    references = {key: caption for key, caption in CORPUS.items()}

    baseline = captioning_baseline(train_captions, references)

    expected = caption_metrics(references, dict.fromkeys(CORPUS, "a cat sleeps on a blue sofa"))
    assert baseline == expected
    assert baseline["bleu_4"] > 0.0
    assert (
        baseline["cider_d"]
        < caption_metrics(references, {key: caption for key, (caption,) in CORPUS.items()})[
            "cider_d"
        ]
    )
