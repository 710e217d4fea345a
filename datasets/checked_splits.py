"""The validation pass of train.py: each split checked before training, by policy.

`--on-bad-example skip` (the default) prints every problem by file and reason
and trains on the rest; `error` stops at the first bad example, naming it.
"""

from collections.abc import Callable

from datasets.examples import CaptionExamples
from datasets.image_sources import FileImages
from datasets.labelled_pairs import LabelledPairs
from datasets.validation import MISSING_FILE, validate_examples


def checked_split(
    examples: CaptionExamples | LabelledPairs,
    on_bad_example: str,
    print_fn: Callable[[str], None] = print,
) -> CaptionExamples | LabelledPairs:
    """Validates a split's images (headers and tails of files) and texts.

    Returns:
        `examples` when nothing is wrong, else the subset of good rows (skip).

    Raises:
        ValueError: under "error", naming the first bad file or row and its reason;
            under "skip", when no row is left.
    """
    texts = examples.captions if isinstance(examples, CaptionExamples) else examples.texts
    report = validate_examples(
        examples.image_paths,
        texts,
        source=examples.source,
        check_files=isinstance(examples.images, FileImages),
    )
    missing = {problem.index for problem in report.problems if problem.reason == MISSING_FILE}
    if len(missing) == len(examples):
        raise ValueError(
            f"{examples.source}: none of its {len(missing)} image files exists (first: "
            f"{report.problems[0].where}); give --image-dir the folder that holds them."
        )
    kept = report.enforce(on_bad_example, print_fn)
    if len(kept) == len(examples):
        return examples
    skipped = len(examples) - len(kept)
    return examples.subset(kept, f" ({skipped} bad rows skipped)")
