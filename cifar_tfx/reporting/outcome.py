"""The one-line result of a run: pushed (version, path, accuracy) or refused (which bound, numbers)."""

from __future__ import annotations

import dataclasses
import json
from typing import Dict, List, Optional, Sequence, Tuple

from cifar_tfx import storage
from cifar_tfx.components.gate import CONFUSION_FILE, GATE_FILE, Bounds, Decision, Metrics, read_gate_record
from cifar_tfx.pipeline.component_ids import EVALUATOR, PUSHER, TRAINER
from cifar_tfx.reporting.run_record import ProducedArtifact


@dataclasses.dataclass(frozen=True)
class Outcome:
    pushed: bool
    accuracy: Optional[float]
    version: Optional[str] = None
    path: Optional[str] = None
    failures: Sequence[str] = ()
    trained: Optional[str] = None   # which network trained, and why (see :func:`training_summary`)
    serving_note: str = ""          # the Pusher's note: what TF Serving serves when not this version

    def line(self, model_name: str) -> str:
        accuracy = "n/a" if self.accuracy is None else f"{self.accuracy:.4f}"
        if self.pushed:
            note = f"; {self.serving_note}" if self.serving_note else ""
            return f"pushed: {model_name} version {self.version} -> {self.path} (test accuracy {accuracy}){note}"
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
    network = report.get("network") or f"ResNet-{report.get('hparams', {}).get('depth')}"  # reports before "network"
    rate = report.get("images_per_second")
    speed = f"{rate:,.0f} img/s" if rate else "resumed after training had finished"
    line = (f"trained {network}: {report.get('steps', 0):,} steps in "
            f"{report.get('elapsed_seconds', 0) / 60:.1f} min, {speed}")
    choice = report.get("network_choice") or report.get("depth_choice")  # "depth_choice": reports before ResNet-9
    if choice:
        line += f"; the budget chose it ({choice['reason']})"
        switched = (choice.get("recheck") or {}).get("switched_to")
        if switched:
            line += f", then {choice['recheck']['reason']}"
    return line


def read_gate(evaluation_uri: str) -> Optional[Tuple[Bounds, Metrics, Optional[Metrics], Decision]]:
    """What the Evaluator applied and decided (its ``gate.json``); ``None`` if it wrote none."""
    path = storage.join(evaluation_uri, GATE_FILE)
    if not storage.exists(path):
        return None
    return read_gate_record(storage.read_bytes(path).decode())


def read_confusion(evaluation_uri: str) -> Optional[Tuple[List[str], List[List[int]]]]:
    """``(class names, counts[true][predicted])`` the Evaluator measured (its ``confusion.json``); ``None``
    if it wrote none."""
    path = storage.join(evaluation_uri, CONFUSION_FILE)
    if not storage.exists(path):
        return None
    record = json.loads(storage.read_bytes(path))
    return list(record["class_names"]), [[int(v) for v in row] for row in record["counts"]]


def read_outcome(produced: Sequence[ProducedArtifact]) -> Outcome:
    """The outcome from the artifacts of one run's executions (see ``local_runner.run_local``)."""
    by_output = {(a.component, a.output): a for a in produced}
    evaluation = by_output.get((EVALUATOR, "evaluation"))
    pushed = by_output.get((PUSHER, "pushed_model"))
    model_run = by_output.get((TRAINER, "model_run"))
    trained = training_summary(model_run.uri) if model_run else None
    gate = read_gate(evaluation.uri) if evaluation else None
    accuracy = gate[1].accuracy if gate else None
    if pushed is not None and pushed.cached:
        return Outcome(False, accuracy, failures=(
            f"every component was taken from the cache: an earlier, identical run made this model (pushed: "
            f"{'version ' + str(pushed.properties.get('pushed_version')) if pushed.properties.get('pushed') == 1 else 'no'}"
            "); --no-cache trains again",), trained=trained)
    if pushed is not None and pushed.properties.get("pushed") == 1:
        return Outcome(True, accuracy, str(pushed.properties.get("pushed_version")),
                       str(pushed.properties.get("pushed_destination")), trained=trained,
                       serving_note=str(pushed.properties.get("serving_note") or ""))
    failures = list(gate[3].failures) if gate else []
    check = pushed.properties.get("serving_check") if pushed is not None else None
    if check and check != "passed":
        failures = list(failures) + [f"serving check failed: {check}"]
    return Outcome(False, accuracy, failures=failures, trained=trained)
