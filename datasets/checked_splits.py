"""The validation pass of train.py: each split checked before training, by policy.

`--on-bad-example skip` (the default) prints every problem by file and reason
and trains on the rest; `error` stops at the first bad example, naming it. The
problems the reader found in the metadata (and left out) are part of the same
report, named by file and position.
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
    """Validates a split's images (headers and tails of files), texts and labels.

    Args:
        examples: the split, with the problems its reader found.
        on_bad_example: "skip" or "error" (see `DataReport.enforce`).
        print_fn: where "skip" prints the report.

    Returns:
        `examples` when nothing is wrong, else the subset of good rows (skip), which
        no longer carries the reader's problems (they have been reported).

    Raises:
        ValueError: under "error", naming the first bad file, row or metadata entry and
            its reason; under "skip", when no row is left; when no image file exists.
    """
    labelled = isinstance(examples, LabelledPairs)
    report = validate_examples(
        examples.image_paths,
        examples.texts if labelled else examples.captions,
        labels=examples.labels if labelled else None,
        reader_problems=examples.problems,
        source=examples.source,
        check_files=isinstance(examples.images, FileImages),
    )
    missing = [p for p in report.problems if p.reason == MISSING_FILE and p.index is not None]
    if missing and len({problem.index for problem in missing}) == len(examples):
        raise ValueError(
            f"{examples.source}: none of its {len(examples)} image files exists (first: "
            f"{missing[0].where}); give --image-dir the folder that holds them."
        )
    kept = report.enforce(on_bad_example, print_fn)
    if not report.problems:
        return examples
    notes = []
    if len(kept) < len(examples):
        notes.append(f"{len(examples) - len(kept)} bad rows skipped")
    if examples.problems:
        notes.append(f"{len(examples.problems)} bad metadata entries left out")
    return examples.subset(kept, f" ({'; '.join(notes)})")
