"""The gate: whether a trained model may be pushed. One pure function, :func:`decide`.

TFMA measures (the Evaluator's ``EvalConfig`` carries no thresholds); this module
decides from what it measured. :class:`GatedEvaluatorExecutor` calls :func:`decide`
and writes the blessing, and the decision with the bounds it applied goes to
``gate.json`` in the evaluation folder, which the run's outcome line and the report
read: what they show is what blessed or refused the model.

No TensorFlow import here: the gate is tested without a pipeline.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Dict, Mapping, Optional, Sequence, Tuple

GATE_FILE = "gate.json"  # in the Evaluator's evaluation folder
CONFUSION_FILE = "confusion.json"  # beside it: the candidate's confusion matrix (pipeline/evaluation.py)


@dataclasses.dataclass(frozen=True)
class Bounds:
    """What a model must reach; the values come from ``HParams`` (``gate_bounds``)."""

    min_accuracy: float            # overall test accuracy at least this
    max_regression: float          # at most this much below the last blessed model (when there is one)
    min_class_accuracy: float = 0.0  # every class's accuracy at least this (0: no per-class bound)

    def __post_init__(self) -> None:
        for name in ("min_accuracy", "max_regression", "min_class_accuracy"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be within [0, 1], got {value!r}")


@dataclasses.dataclass(frozen=True)
class Metrics:
    """A model's measured accuracy: overall, and per class name (may be empty)."""

    accuracy: float
    class_accuracy: Mapping[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Decision:
    blessed: bool
    failures: Tuple[str, ...]  # one line per failed bound, in the order the bounds are checked


def decide(candidate: Metrics, baseline: Optional[Metrics], bounds: Bounds,
           baseline_name: str = "the last blessed model") -> Decision:
    """Bless ``candidate`` only if it clears every bound; a missing number (NaN) clears none.

    ``baseline``: the metrics, on the same examples, of the model to compare with (the last
    blessed model, or the one the serving folder serves: ``baseline_name`` says which), or
    ``None`` for the first model (the regression bound then has nothing to compare with).
    """
    failures = []
    if not candidate.accuracy >= bounds.min_accuracy:
        failures.append(f"min-accuracy failed: accuracy {candidate.accuracy:.4f} < {bounds.min_accuracy:.4f}")
    if baseline is not None and not candidate.accuracy >= baseline.accuracy - bounds.max_regression:
        failures.append(f"max-regression failed: accuracy {candidate.accuracy:.4f} is "
                        f"{baseline.accuracy - candidate.accuracy:.4f} below {baseline_name}'s "
                        f"{baseline.accuracy:.4f}, allowed {bounds.max_regression:.4f}")
    if bounds.min_class_accuracy > 0:
        for name, accuracy in candidate.class_accuracy.items():
            if not accuracy >= bounds.min_class_accuracy:
                failures.append(f"min-class-accuracy failed on {name}: accuracy {accuracy:.4f} < "
                                f"{bounds.min_class_accuracy:.4f}")
    return Decision(blessed=not failures, failures=tuple(failures))


def gate_record(bounds: Bounds, candidate: Metrics, baseline: Optional[Metrics], decision: Decision,
                baseline_source: str = "") -> str:
    """``gate.json``: the bounds applied, both models' metrics (and where the baseline came from) and
    the decision."""
    return json.dumps({"bounds": dataclasses.asdict(bounds), "candidate": _metrics_dict(candidate),
                       "baseline": None if baseline is None else _metrics_dict(baseline),
                       "baseline_source": baseline_source,
                       "blessed": decision.blessed, "failures": list(decision.failures)}, indent=2)


def read_gate_record(text: str) -> Tuple[Bounds, Metrics, Optional[Metrics], Decision]:
    """Inverse of :func:`gate_record`."""
    record = json.loads(text)
    baseline = record.get("baseline")
    return (Bounds(**record["bounds"]), _metrics(record["candidate"]), None if baseline is None else _metrics(baseline),
            Decision(bool(record["blessed"]), tuple(record["failures"])))


def _metrics_dict(metrics: Metrics) -> Dict[str, object]:
    def number(value: float):
        return value if math.isfinite(value) else None  # JSON has no NaN

    return {"accuracy": number(metrics.accuracy),
            "class_accuracy": {name: number(value) for name, value in metrics.class_accuracy.items()}}


def _metrics(record: Mapping[str, object]) -> Metrics:
    def number(value) -> float:
        return math.nan if value is None else float(value)

    return Metrics(number(record["accuracy"]),
                   {name: number(value) for name, value in dict(record.get("class_accuracy") or {}).items()})


def class_accuracies(per_label: Mapping[int, float], class_names: Sequence[str]) -> Dict[str, float]:
    """Per-class accuracy keyed by class name, in label order (unknown labels by number)."""
    return {class_names[label] if 0 <= label < len(class_names) else str(label): per_label[label]
            for label in sorted(per_label)}
