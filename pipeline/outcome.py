"""The one-line result of a run: pushed (version, path, accuracy) or refused (which bound, numbers)."""

from __future__ import annotations

import dataclasses
import json
from typing import Dict, List, Optional, Sequence

from cifar_tfx import storage

from cifar_tfx.pipeline.evaluation import ACCURACY


@dataclasses.dataclass(frozen=True)
class Outcome:
    pushed: bool
    accuracy: Optional[float]
    version: Optional[str] = None
    path: Optional[str] = None
    failures: Sequence[str] = ()
    trained: Optional[str] = None   # which network trained, and why (see :func:`training_summary`)

    def line(self, model_name: str) -> str:
        accuracy = "n/a" if self.accuracy is None else f"{self.accuracy:.4f}"
        if self.pushed:
            return f"pushed: {model_name} version {self.version} -> {self.path} (test accuracy {accuracy})"
        reasons = "; ".join(self.failures) or "the Evaluator did not bless the model"
        return f"not pushed: {reasons} (test accuracy {accuracy}); the serving directory is unchanged"


def training_report(model_run_uri: str) -> Dict[str, object]:
    """The Trainer's ``report/training.json`` under ``model_run_uri`` (empty if there is none)."""
    path = storage.join(model_run_uri, "report", "training.json")
    return json.loads(storage.read_bytes(path)) if storage.exists(path) else {}


def training_summary(model_run_uri: str) -> Optional[str]:
    """``trained ResNet-20: 9,100 steps in 9.5 min (...)`` from the Trainer's ``report/training.json``."""
    report = training_report(model_run_uri)
    if not report:
        return None
    depth = report.get("hparams", {}).get("depth")
    line = (f"trained ResNet-{depth}: {report.get('steps', 0):,} steps in "
            f"{report.get('elapsed_seconds', 0) / 60:.1f} min, {report.get('images_per_second', 0):,.0f} img/s")
    choice = report.get("depth_choice")
    if choice:
        line += f"; the budget chose it ({choice['reason']})"
    return line


def overall_accuracy(evaluation_uri: str, model_name: Optional[str] = None) -> Optional[float]:
    """Overall-slice accuracy of a TFMA evaluation output (of ``model_name``, e.g. ``baseline``, if given)."""
    import tensorflow_model_analysis as tfma

    for slice_key, metrics in tfma.load_eval_result(evaluation_uri, model_name=model_name).slicing_metrics:
        if slice_key == ():
            for per_output in metrics.values():
                for per_class in per_output.values():
                    if ACCURACY in per_class:
                        return float(per_class[ACCURACY]["doubleValue"])
    return None


def failed_bounds(evaluation_uri: str) -> List[str]:
    """Human-readable description of each failed threshold on the overall slice."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_validation_result(evaluation_uri)
    messages = []
    for per_slice in result.metric_validations_per_slice:
        where = "".join(f" on {k.column}={k.int64_value or k.bytes_value.decode() or k.float_value}"
                        for k in per_slice.slice_key.single_slice_keys)
        for failure in per_slice.failures:
            value = failure.metric_value.double_value.value
            if failure.metric_key.is_diff:
                allowed = failure.metric_threshold.change_threshold.absolute.value
                messages.append(f"max-regression failed{where}: accuracy changed by {value:+.4f} against the "
                                f"last blessed model, allowed {allowed:+.4f}")
            else:
                bound = failure.metric_threshold.value_threshold.lower_bound.value
                messages.append(f"min-accuracy failed{where}: accuracy {value:.4f} < {bound:.4f}")
    if result.missing_slices or result.missing_thresholds:
        messages.append("some thresholds or slices were missing from the evaluation")
    return messages


def read_outcome(produced) -> Outcome:
    """The outcome from the artifacts one run produced (see ``local_runner.run_local``)."""
    by_output = {(a.component, a.output): a for a in produced}
    evaluation = by_output.get(("Evaluator", "evaluation"))
    pushed = by_output.get(("Pusher", "pushed_model"))
    model_run = by_output.get(("Trainer", "model_run"))
    trained = training_summary(model_run.uri) if model_run else None
    accuracy = overall_accuracy(evaluation.uri) if evaluation else None
    if pushed is not None and pushed.properties.get("pushed") == 1:
        return Outcome(True, accuracy, str(pushed.properties.get("pushed_version")),
                       str(pushed.properties.get("pushed_destination")), trained=trained)
    failures = failed_bounds(evaluation.uri) if evaluation else []
    check = pushed.properties.get("serving_check") if pushed is not None else None
    if check and check != "passed":
        failures = list(failures) + [f"serving check failed: {check}"]
    return Outcome(False, accuracy, failures=failures, trained=trained)
