import tracemalloc

import numpy as np
import pytest

from evaluation.retrieval import chance_recalls, retrieval_recalls


def unit_rows(rng, rows, dim):
    vectors = rng.standard_normal((rows, dim))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def recalls_from_ranks(text_ranks, image_ranks, ks):
    recalls = {f"text_to_image_r@{k}": float(np.mean(np.array(text_ranks) < k)) for k in ks}
    recalls.update({f"image_to_text_r@{k}": float(np.mean(np.array(image_ranks) < k)) for k in ks})
    return recalls


def naive_recalls(images, texts, text_image_index, ks):
    """Pessimistic ranks with Python loops over the full score matrix."""
    scores = texts @ images.T
    num_texts, num_images = scores.shape
    text_ranks = []
    for text in range(num_texts):
        own = text_image_index[text]
        text_ranks.append(
            sum(
                scores[text, image] >= scores[text, own]
                for image in range(num_images)
                if image != own
            )
        )
    image_ranks = []
    for image in range(num_images):
        best = max(
            scores[text, image] for text in range(num_texts) if text_image_index[text] == image
        )
        image_ranks.append(
            sum(
                scores[text, image] >= best
                for text in range(num_texts)
                if text_image_index[text] != image
            )
        )
    return recalls_from_ranks(text_ranks, image_ranks, ks)


def test_keys_and_types():
    recalls = retrieval_recalls(np.eye(3), np.eye(3), np.arange(3))
    assert list(recalls) == [
        "text_to_image_r@1",
        "text_to_image_r@5",
        "text_to_image_r@10",
        "image_to_text_r@1",
        "image_to_text_r@5",
        "image_to_text_r@10",
    ]
    assert all(type(value) is float for value in recalls.values())


def test_perfect_embeddings_recall_everything():
    rng = np.random.default_rng(0)
    images = unit_rows(rng, 50, 32)
    text_image_index = np.repeat(np.arange(50), 5)
    texts = images[text_image_index]

    recalls = retrieval_recalls(images, texts, text_image_index)

    assert recalls == dict.fromkeys(recalls, 1.0)
    assert len(recalls) == 6


def test_constructed_case_with_known_ranks():
    # With identity image embeddings, text row j is its score for each image.
    images = np.eye(4)
    texts = np.array(
        [
            [0.9, 0.1, 0.2, 0.3],  # text 0 of image 0: rank 0
            [0.2, 0.8, 0.5, 0.1],  # text 1 of image 0: 0.8, 0.5 above -> rank 2
            [0.5, 0.4, 0.6, 0.7],  # text 2 of image 1: three above -> rank 3
            [0.1, 0.2, 0.3, 0.0],  # text 3 of image 2: rank 0
            [0.4, 0.4, 0.4, 0.4],  # text 4 of image 3: three ties -> pessimistic rank 3
            [0.0, 0.9, 0.0, 0.5],  # text 5 of image 3: 0.9 above -> rank 1
        ]
    )
    text_image_index = np.array([0, 0, 1, 2, 3, 3])
    # Image to text reads the columns; the rank is the number of wrong texts scored at
    # least as high as the image's best correct text:
    #   image 0: best correct 0.9 (text 0), no wrong text >= 0.9 -> rank 0
    #   image 1: correct 0.4 (text 2); wrong 0.8, 0.4 (tie), 0.9 -> rank 3
    #   image 2: correct 0.3 (text 3); wrong 0.5, 0.6, 0.4 -> rank 3
    #   image 3: best correct 0.5 (text 5); wrong 0.7 -> rank 1
    recalls = retrieval_recalls(images, texts, text_image_index, ks=(1, 2, 3, 4))

    assert recalls == {
        "text_to_image_r@1": 2 / 6,
        "text_to_image_r@2": 3 / 6,
        "text_to_image_r@3": 4 / 6,
        "text_to_image_r@4": 6 / 6,
        "image_to_text_r@1": 1 / 4,
        "image_to_text_r@2": 2 / 4,
        "image_to_text_r@3": 2 / 4,
        "image_to_text_r@4": 4 / 4,
    }


def test_all_equal_embeddings_get_pessimistic_ranks():
    num_images, texts_per_image = 20, 4
    text_image_index = np.repeat(np.arange(num_images), texts_per_image)
    images = np.ones((num_images, 8))
    texts = np.ones((num_images * texts_per_image, 8))
    # Every score ties, so every correct item ranks below all wrong ones: a text's image
    # has rank 19 of 20, an image's texts come after the 76 wrong texts.
    recalls = retrieval_recalls(images, texts, text_image_index, ks=(1, 5, 10, 20, 76, 77))

    assert recalls == {
        "text_to_image_r@1": 0.0,
        "text_to_image_r@5": 0.0,
        "text_to_image_r@10": 0.0,
        "text_to_image_r@20": 1.0,
        "text_to_image_r@76": 1.0,
        "text_to_image_r@77": 1.0,
        "image_to_text_r@1": 0.0,
        "image_to_text_r@5": 0.0,
        "image_to_text_r@10": 0.0,
        "image_to_text_r@20": 0.0,
        "image_to_text_r@76": 0.0,
        "image_to_text_r@77": 1.0,
    }


def test_tie_with_a_wrong_item_is_a_miss_at_one():
    images = np.array([[1.0, 0.0], [1.0, 0.0]])
    texts = np.array([[1.0, 0.0], [0.0, 1.0]])
    recalls = retrieval_recalls(images, texts, np.array([0, 1]), ks=(1, 2))
    assert recalls["text_to_image_r@1"] == 0.0
    assert recalls["text_to_image_r@2"] == 1.0


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 29, 1000])
def test_chunked_equals_unchunked_and_naive(chunk_size):
    rng = np.random.default_rng(1)
    num_images, num_texts = 29, 90
    # Small integer coordinates: exact scores with many ties.
    images = rng.integers(-2, 3, size=(num_images, 4)).astype(np.float64)
    texts = rng.integers(-2, 3, size=(num_texts, 4)).astype(np.float64)
    text_image_index = np.concatenate(
        [np.arange(num_images), rng.integers(0, num_images, num_texts - num_images)]
    )
    rng.shuffle(text_image_index)
    ks = (1, 3, 5, 10)

    chunked = retrieval_recalls(images, texts, text_image_index, ks, chunk_size=chunk_size)

    assert chunked == retrieval_recalls(images, texts, text_image_index, ks, chunk_size=10**6)
    assert chunked == naive_recalls(images, texts, text_image_index, ks)


def test_random_float_embeddings_match_naive():
    rng = np.random.default_rng(2)
    images = unit_rows(rng, 40, 16).astype(np.float32)
    text_image_index = np.repeat(np.arange(40), 3)
    texts = (images[text_image_index] + rng.standard_normal((120, 16)).astype(np.float32)).astype(
        np.float32
    )
    ks = (1, 5, 10)

    recalls = retrieval_recalls(images, texts, text_image_index, ks, chunk_size=16)

    assert recalls == naive_recalls(images, texts, text_image_index, ks)
    assert 0.0 < recalls["text_to_image_r@1"] < 1.0


def test_coco_5k_size_keeps_one_chunk_of_scores_in_memory():
    rng = np.random.default_rng(3)
    num_images, num_texts, chunk_size = 5000, 25000, 128
    images = unit_rows(rng, num_images, 16).astype(np.float32)
    text_image_index = np.repeat(np.arange(num_images), 5)
    texts = images[text_image_index]
    tracemalloc.start()
    try:
        recalls = retrieval_recalls(images, texts, text_image_index, chunk_size=chunk_size)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert recalls == dict.fromkeys(recalls, 1.0)
    # One float32 [128, 25000] score matrix and one bool mask take 16 MB (the whole score
    # matrix would be 500 MB); a second score matrix alive at once would pass 24 MB.
    one_chunk_bytes = chunk_size * num_texts * (4 + 1)
    assert peak < 1.5 * one_chunk_bytes


@pytest.mark.parametrize(
    ("images", "texts", "index", "kwargs", "message"),
    [
        (np.ones(3), np.ones((3, 2)), np.arange(3), {}, r"image_embeddings` must be 2-D"),
        (np.ones((3, 2)), np.ones((3, 4)), np.arange(3), {}, "dim 2.*dim 4"),
        (np.ones((0, 2)), np.ones((3, 2)), np.arange(3), {}, "`image_embeddings` is empty"),
        (np.ones((3, 2)), np.ones((3, 2)), np.arange(2), {}, "2 entries but there are 3 texts"),
        (np.ones((3, 2)), np.ones((3, 2)), np.array([0, 1, 3]), {}, r"index\[2\]` is 3"),
        (np.ones((3, 2)), np.ones((3, 2)), np.array([0, -1, 2]), {}, r"index\[1\]` is -1"),
        (np.ones((3, 2)), np.ones((3, 2)), np.array([0.0, 1.0, 2.0]), {}, "dtype float64"),
        (np.ones((3, 2)), np.ones((3, 2)), np.array([0, 0, 2]), {}, "Image 1 has no text"),
        (np.ones((3, 2)), np.ones((3, 2)), np.arange(3), {"ks": (1, 0)}, "got 0"),
        (np.ones((3, 2)), np.ones((3, 2)), np.arange(3), {"ks": (5, 5)}, "duplicate"),
        (np.ones((3, 2)), np.ones((3, 2)), np.arange(3), {"ks": ()}, "`ks` is empty"),
        (np.ones((3, 2)), np.ones((3, 2)), np.arange(3), {"chunk_size": 0}, "`chunk_size`"),
        (np.ones((3, 2)), np.full((3, 2), np.nan), np.arange(3), {}, r"text_embeddings\[0, 0\]"),
        (np.ones((3, 2)), np.array([["a", "b"]] * 3), np.arange(3), {}, "real numbers"),
    ],
)
def test_bad_inputs_raise(images, texts, index, kwargs, message):
    with pytest.raises(ValueError, match=message):
        retrieval_recalls(images, texts, index, **kwargs)


def test_chance_recalls_hand_computed():
    # Image 0 has 2 of the 5 texts, images 1-3 one each.
    # k=1: image 0 hits with 2/5, others 1/5 -> mean 0.25.
    # k=2: image 0: 1 - C(3,2)/C(5,2) = 0.7; others 1 - C(4,2)/C(5,2) = 0.4 -> 0.475.
    # k=10 >= M: every text is in the top k.
    recalls = chance_recalls(4, np.array([0, 0, 1, 2, 3]), ks=(1, 2, 10))
    assert recalls == pytest.approx(
        {
            "text_to_image_r@1": 0.25,
            "text_to_image_r@2": 0.5,
            "text_to_image_r@10": 1.0,
            "image_to_text_r@1": 0.25,
            "image_to_text_r@2": 0.475,
            "image_to_text_r@10": 1.0,
        },
        abs=1e-12,
    )
    assert list(recalls) == list(retrieval_recalls(np.eye(4), np.eye(4), np.arange(4), (1, 2, 10)))


def test_chance_recalls_match_monte_carlo_simulation():
    rng = np.random.default_rng(4)
    texts_per_image = np.array([1, 2, 3, 1, 4, 2, 5, 2])
    num_images, num_texts = texts_per_image.size, int(texts_per_image.sum())
    text_image_index = np.repeat(np.arange(num_images), texts_per_image)
    ks = (1, 3, 5)
    trials = 20000
    # Random rankings: rank of each image for each text, of each text for each image.
    image_rank_for_text = rng.random((trials, num_texts, num_images)).argsort(2).argsort(2)
    text_rank_for_image = rng.random((trials, num_images, num_texts)).argsort(2).argsort(2)
    own_image_rank = np.take_along_axis(
        image_rank_for_text, text_image_index[None, :, None], axis=2
    )[..., 0]
    own = text_image_index[None, :] == np.arange(num_images)[:, None]
    best_own_text_rank = np.where(own[None], text_rank_for_image, num_texts).min(axis=2)
    simulated = recalls_from_ranks(own_image_rank.ravel(), best_own_text_rank.ravel(), ks)

    exact = chance_recalls(num_images, text_image_index, ks)

    assert exact == pytest.approx(simulated, abs=0.01)
    assert exact["image_to_text_r@3"] > exact["text_to_image_r@1"]


def test_chance_recalls_match_recalls_of_random_embeddings():
    rng = np.random.default_rng(5)
    text_image_index = np.repeat(np.arange(10), [1, 2, 3, 1, 4, 2, 5, 2, 1, 1])
    ks = (1, 3)
    runs = [
        retrieval_recalls(
            rng.standard_normal((10, 8)), rng.standard_normal((22, 8)), text_image_index, ks
        )
        for _ in range(400)
    ]
    mean = {key: float(np.mean([run[key] for run in runs])) for key in runs[0]}

    assert chance_recalls(10, text_image_index, ks) == pytest.approx(mean, abs=0.04)


@pytest.mark.parametrize(
    ("num_images", "index", "message"),
    [
        (0, np.array([0]), "`num_images` must be a positive integer"),
        (2, np.array([0, 2]), r"index\[1\]` is 2"),
        (3, np.array([0, 2]), "Image 1 has no text"),
        (2, np.array([], dtype=int), "no texts"),
    ],
)
def test_chance_recalls_bad_inputs_raise(num_images, index, message):
    with pytest.raises(ValueError, match=message):
        chance_recalls(num_images, index)
