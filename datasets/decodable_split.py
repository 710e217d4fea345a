"""The evaluation split without the images that fail to decode, each one reported.

Training and validation data drop such an image alone while they stream
(`datasets.decode_errors`). Evaluation cannot: its predictions are matched to the
examples by position. So before evaluating, every distinct image of the split is
decoded once (in parallel, no model), and the rows of the images that failed are
left out by policy, named, never silently.
"""

from collections.abc import Callable

import tensorflow as tf

from datasets.decode_errors import DecodeErrorLog
from datasets.examples import CaptionExamples
from datasets.images import preprocess_image
from datasets.labelled_pairs import LabelledPairs

AUTOTUNE = tf.data.AUTOTUNE


def undecodable_images(examples: CaptionExamples | LabelledPairs, image_size: int) -> list[str]:
    """The image keys of `examples` that cannot be read or decoded, in first-seen order."""
    keys = list(dict.fromkeys(examples.image_paths))
    stream = examples.images.rows(keys, training=False, seed=None)
    log = DecodeErrorLog(index_key="row")
    # The decoded images themselves are consumed: a decode whose result is unused
    # (only its static shape, say) is optimised away and would never fail.
    decoded = log.decode(
        stream, lambda element: preprocess_image(element["image_bytes"], image_size), names=keys
    )
    decoded.reduce(tf.constant(0.0), lambda total, image: total + tf.reduce_mean(image))
    return [keys[index] for index in sorted(log.failures())]


def decodable_split(
    examples: CaptionExamples | LabelledPairs,
    image_size: int,
    on_bad_example: str,
    print_fn: Callable[[str], None] = print,
) -> CaptionExamples | LabelledPairs:
    """`examples` without the rows whose image fails to decode.

    Args:
        examples: the split to evaluate on.
        image_size: the model's input size (decoding includes the resize).
        on_bad_example: "skip" prints every failed image and leaves its rows out;
            "error" raises at the first.
        print_fn: where "skip" reports.

    Raises:
        ValueError: under "error", naming the first image that failed; under "skip",
            when no row is left.
    """
    failed = undecodable_images(examples, image_size)
    if not failed:
        return examples
    if on_bad_example == "error":
        raise ValueError(
            f"{failed[0]}: an image of {examples.source} could not be read or decoded "
            f"({len(failed)} failed in all; skip them with --on-bad-example skip)"
        )
    bad = set(failed)
    kept = [index for index, key in enumerate(examples.image_paths) if key not in bad]
    if not kept:
        raise ValueError(f"{examples.source}: none of its images decodes.")
    named = "\n".join(f"  {key}" for key in failed[:20])
    more = f"\n  ... and {len(failed) - 20} more" if len(failed) > 20 else ""
    print_fn(
        f"{examples.source}: {len(failed)} image(s) could not be read or decoded; their "
        f"{len(examples) - len(kept)} row(s) are left out of evaluation:\n{named}{more}"
    )
    return examples.subset(kept, f" ({len(examples) - len(kept)} undecodable rows skipped)")
