"""Image-text retrieval recall@k, with pessimistic ties, and its chance level.

Scores are dot products, so pass L2-normalised embeddings (what the
`encode_image` and `encode_text` signatures return) to rank by cosine
similarity. The score matrix is never built whole: it is computed `chunk_size`
rows at a time, so 5,000 images against 25,000 texts (COCO 5k test) needs
about 64 MB for float32 embeddings with the default chunk size.

Ties never favour the right answer: a correct item is ranked below every
wrong item whose score is equal to or higher than its own (pessimistic rank),
so a model that gives every item the same score gets the lowest recall
possible, not a perfect one.

Example:

>>> images = np.eye(3)
>>> texts = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.9, 0.0, 0.1]])
>>> retrieval_recalls(images, texts, np.array([0, 1, 2, 2]), ks=(1,))
{'text_to_image_r@1': 0.75, 'image_to_text_r@1': 1.0}
"""

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from evaluation.checks import index_vector

DEFAULT_KS = (1, 5, 10)


def _validated_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks:
        raise ValueError("`ks` is empty: give at least one k.")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"Every k in `ks` must be a positive integer, got {k!r}.")
    if len(set(ks)) != len(ks):
        raise ValueError(f"`ks` has duplicate values: {ks}.")
    return tuple(int(k) for k in ks)


def _validated_index(
    text_image_index: np.ndarray, num_images: int, num_texts: int | None
) -> np.ndarray:
    """Checks that each text names an image in [0, num_images) and each image has a text."""
    index = np.asarray(text_image_index)
    if index.ndim != 1:
        raise ValueError(f"`text_image_index` must be 1-D, got shape {index.shape}.")
    if num_texts is not None and index.shape[0] != num_texts:
        raise ValueError(
            f"`text_image_index` has {index.shape[0]} entries but there are {num_texts} texts."
        )
    index = index_vector(index, "text_image_index", num_images, "images")
    texts_per_image = np.bincount(index, minlength=num_images)
    without_text = np.flatnonzero(texts_per_image == 0)
    if without_text.size:
        raise ValueError(
            f"Image {int(without_text[0])} has no text in `text_image_index` "
            f"({without_text.size} image(s) have none); image-to-text recall "
            "needs at least one text per image."
        )
    return index


def _validated_embeddings(
    image_embeddings: np.ndarray, text_embeddings: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    images = np.asarray(image_embeddings)
    texts = np.asarray(text_embeddings)
    for name, array in (("image_embeddings", images), ("text_embeddings", texts)):
        if array.ndim != 2:
            raise ValueError(f"`{name}` must be 2-D [count, dim], got shape {array.shape}.")
        if array.shape[0] == 0:
            raise ValueError(f"`{name}` is empty (shape {array.shape}).")
        if array.dtype == bool or not (
            np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
        ):
            raise ValueError(f"`{name}` must hold real numbers, got dtype {array.dtype}.")
    if images.shape[1] != texts.shape[1]:
        raise ValueError(
            f"Embedding sizes differ: `image_embeddings` has dim {images.shape[1]}, "
            f"`text_embeddings` has dim {texts.shape[1]}."
        )
    dtype = np.result_type(images.dtype, texts.dtype, np.float32)
    images = images.astype(dtype, copy=False)
    texts = texts.astype(dtype, copy=False)
    for name, array in (("image_embeddings", images), ("text_embeddings", texts)):
        bad = np.argwhere(~np.isfinite(array))
        if bad.size:
            row, column = (int(value) for value in bad[0])
            raise ValueError(
                f"`{name}[{row}, {column}]` is {array[row, column]}; embeddings must be finite."
            )
    return images, texts


def _chunk_buffers(
    chunk_size: int, num_queries: int, num_candidates: int, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """The one score matrix and one comparison mask reused by every chunk."""
    rows = min(chunk_size, num_queries)
    return (
        np.empty((rows, num_candidates), dtype=dtype),
        np.empty((rows, num_candidates), dtype=bool),
    )


def _text_to_image_ranks(
    images: np.ndarray, texts: np.ndarray, index: np.ndarray, chunk_size: int
) -> np.ndarray:
    """Pessimistic 0-based rank of each text's image among all images."""
    ranks = np.empty(texts.shape[0], dtype=np.int64)
    score_buffer, hit_buffer = _chunk_buffers(
        chunk_size, texts.shape[0], images.shape[0], images.dtype
    )
    for start in range(0, texts.shape[0], chunk_size):
        stop = min(start + chunk_size, texts.shape[0])
        scores = np.matmul(texts[start:stop], images.T, out=score_buffer[: stop - start])
        correct = scores[np.arange(stop - start), index[start:stop]]
        at_least_correct = np.greater_equal(
            scores, correct[:, None], out=hit_buffer[: stop - start]
        )
        ranks[start:stop] = np.count_nonzero(at_least_correct, axis=1) - 1
    return ranks


def _image_to_text_ranks(
    images: np.ndarray, texts: np.ndarray, index: np.ndarray, chunk_size: int
) -> np.ndarray:
    """Pessimistic 0-based rank of each image's best-scored text among all texts.

    The rank is the number of wrong texts scored at least as high as the
    image's best-scored correct text.
    """
    texts_by_image = np.argsort(index, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(index, minlength=images.shape[0]))])
    ranks = np.empty(images.shape[0], dtype=np.int64)
    score_buffer, hit_buffer = _chunk_buffers(
        chunk_size, images.shape[0], texts.shape[0], images.dtype
    )
    for start in range(0, images.shape[0], chunk_size):
        stop = min(start + chunk_size, images.shape[0])
        scores = np.matmul(images[start:stop], texts.T, out=score_buffer[: stop - start])
        correct_texts = texts_by_image[offsets[start] : offsets[stop]]
        rows = index[correct_texts] - start
        correct_scores = scores[rows, correct_texts]
        best = np.maximum.reduceat(correct_scores, offsets[start:stop] - offsets[start])
        at_least_best = np.greater_equal(scores, best[:, None], out=hit_buffer[: stop - start])
        correct_at_best = np.bincount(rows[correct_scores >= best[rows]], minlength=stop - start)
        ranks[start:stop] = np.count_nonzero(at_least_best, axis=1) - correct_at_best
    return ranks


def retrieval_recalls(
    image_embeddings: np.ndarray,
    text_embeddings: np.ndarray,
    text_image_index: np.ndarray,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    chunk_size: int = 512,
) -> dict[str, float]:
    """Computes text-to-image and image-to-text recall@k from embeddings.

    Text to image: a text hits at k if its image is among the top k images by
    dot-product score. Image to text: an image hits at k if any of its texts
    is among the top k texts. Recall@k is the fraction of queries that hit.
    Ranks are pessimistic: a correct item counts as ranked below every wrong
    item with an equal or higher score.

    Args:
        image_embeddings: float [N, D], one row per image.
        text_embeddings: float [M, D], one row per text.
        text_image_index: int [M]; `text_image_index[j]` is the row of
            `image_embeddings` that text `j` describes. Every image needs at
            least one text.
        ks: The k values, positive and distinct.
        chunk_size: Rows of the score matrix computed at once. Peak memory is
            one `[chunk_size, max(N, M)]` score matrix (in the embeddings'
            float dtype, at least float32) plus a boolean mask of that shape.

    Returns:
        `{"text_to_image_r@{k}" for k in ks}` then `{"image_to_text_r@{k}" for
        k in ks}` -> recall in [0, 1], as Python floats.

    Raises:
        ValueError: On shapes that do not match, embeddings that are not
            finite real numbers, an index out of range or an image without
            text, a bad k or chunk size; the message names the value.

    Example:

    >>> embeddings = np.eye(4)
    >>> recalls = retrieval_recalls(embeddings, embeddings, np.arange(4), ks=(1, 2))
    >>> list(recalls)
    ['text_to_image_r@1', 'text_to_image_r@2', 'image_to_text_r@1', 'image_to_text_r@2']
    >>> set(recalls.values())
    {1.0}
    """
    ks = _validated_ks(ks)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"`chunk_size` must be a positive integer, got {chunk_size!r}.")
    images, texts = _validated_embeddings(image_embeddings, text_embeddings)
    index = _validated_index(text_image_index, images.shape[0], texts.shape[0])
    text_ranks = _text_to_image_ranks(images, texts, index, chunk_size)
    image_ranks = _image_to_text_ranks(images, texts, index, chunk_size)
    recalls = {f"text_to_image_r@{k}": float(np.mean(text_ranks < k)) for k in ks}
    recalls.update({f"image_to_text_r@{k}": float(np.mean(image_ranks < k)) for k in ks})
    return recalls


def chance_recalls(
    num_images: int, text_image_index: np.ndarray, ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """Expected recall@k of a uniformly random ranking, exactly.

    Text to image: `min(k, N) / N`. Image to text: the mean over images of
    `1 - C(M - n_i, k) / C(M, k)`, the chance that a random top k of the M
    texts holds at least one of the image's n_i texts (k is capped at M).
    Computed with exact integer arithmetic, then rounded once to float.

    Args:
        num_images: N, the number of images.
        text_image_index: int [M]; the image of each text, as for
            `retrieval_recalls`. Every image needs at least one text.
        ks: The k values, positive and distinct.

    Returns:
        The keys of `retrieval_recalls` -> expected recall, as Python floats.

    Raises:
        ValueError: On a bad `num_images`, index or k; the message names the
            value.

    Example:

    >>> chance_recalls(4, np.array([0, 0, 1, 2, 3]), ks=(1,))
    {'text_to_image_r@1': 0.25, 'image_to_text_r@1': 0.25}
    """
    ks = _validated_ks(ks)
    if (
        isinstance(num_images, bool)
        or not isinstance(num_images, int | np.integer)
        or num_images < 1
    ):
        raise ValueError(f"`num_images` must be a positive integer, got {num_images!r}.")
    num_images = int(num_images)
    index = _validated_index(text_image_index, num_images, None)
    num_texts = index.shape[0]
    sizes, images_of_size = np.unique(np.bincount(index, minlength=num_images), return_counts=True)
    recalls = {f"text_to_image_r@{k}": min(k, num_images) / num_images for k in ks}
    for k in ks:
        top = min(k, num_texts)
        all_miss = sum(
            Fraction(int(count) * math.comb(num_texts - int(size), top), math.comb(num_texts, top))
            for size, count in zip(sizes, images_of_size, strict=True)
        )
        recalls[f"image_to_text_r@{k}"] = float(1 - all_miss / num_images)
    return recalls


def retrieval_recalls_from_scores(
    scores: np.ndarray, text_image_index: np.ndarray, ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """Recall@k, as `retrieval_recalls`, from a full score matrix [N images, M texts].

    For models that score each pair jointly (cross-attention) and so have no
    separate embeddings. Scoring `scores` rows against one-hot text rows reuses
    the exact ranking of `retrieval_recalls`, ties and all.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"`scores` must be a [num_images, num_texts] matrix, got {scores.shape}.")
    return retrieval_recalls(
        scores, np.eye(scores.shape[1], dtype=scores.dtype), text_image_index, ks
    )
