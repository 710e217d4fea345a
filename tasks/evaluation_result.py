"""What a task's evaluation returns."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EvaluationResult:
    """Metrics of the model and of the trivial baseline, on the same split.

    Attributes:
        metrics: metric name -> value for the model.
        baseline: the same metric names for the task's trivial baseline.
        baseline_name: what the baseline is, in words.
        samples: a few (input, output) examples to print.
    """

    metrics: dict[str, float]
    baseline: dict[str, float]
    baseline_name: str
    samples: list[dict] = field(default_factory=list)
