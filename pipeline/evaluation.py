"""The Evaluator's configuration (what TFMA measures) and the one reader of what it measured.

The gate's bounds are not in the ``EvalConfig``: TFMA measures, ``components/gate.py`` decides.
"""

from __future__ import annotations

import json
import math
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

import tensorflow_model_analysis as tfma

from cifar_tfx.components.gate import Metrics, class_accuracies
from cifar_tfx.example_format import LABEL_KEY
from cifar_tfx.model_contract import EXAMPLES_SIGNATURE

ACCURACY = "sparse_categorical_accuracy"
CONFUSION_PLOT = "multiClassConfusionMatrixAtThresholds"  # MultiClassConfusionMatrixPlot's key in TFMA's plots
CANDIDATE, BASELINE = tfma.CANDIDATE_KEY, tfma.BASELINE_KEY  # model names TFX gives when a baseline is present


def make_eval_config() -> tfma.EvalConfig:
    """Accuracy overall and per class (sliced by label), confusion matrix and example count, on
    ``serving_default``. No thresholds: the Evaluator measures, then ``gate.decide`` blesses."""
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name=EXAMPLES_SIGNATURE, label_key=LABEL_KEY,
                                    prediction_key="probabilities", preprocessing_function_names=[])],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[LABEL_KEY])],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="SparseCategoricalAccuracy"),
            tfma.MetricConfig(class_name="ExampleCount"),
            tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
        ])],
    )


def measured(evaluation_uri: str, class_names: Sequence[str], model_name: Optional[str] = None) -> Metrics:
    """Overall and per-class accuracy of one model in a TFMA evaluation folder (NaN overall if absent).

    ``model_name``: ``None`` when the evaluation holds one model, else ``CANDIDATE`` or ``BASELINE``.
    """
    overall, per_label = math.nan, {}
    for slice_key, metrics in tfma.load_eval_result(evaluation_uri, model_name=model_name).slicing_metrics:
        value = _accuracy_in(metrics)
        if value is None:
            continue
        if slice_key == ():
            overall = value
        elif len(slice_key) == 1 and slice_key[0][0] == LABEL_KEY:
            per_label[int(slice_key[0][1])] = value
    return Metrics(overall, class_accuracies(per_label, class_names))


def _accuracy_in(metrics: Dict) -> Optional[float]:
    for per_output in metrics.values():
        for per_class in per_output.values():
            if ACCURACY in per_class:
                return float(per_class[ACCURACY]["doubleValue"])
    return None


def confusion_counts(evaluation_uri: str, num_classes: int, model_name: Optional[str] = None) -> Optional[List[List[int]]]:
    """``counts[true][predicted]`` of one model over the whole split, from TFMA's confusion-matrix plot
    (overall slice, its one threshold 0: the top class); ``None`` if the evaluation holds no such plot.

    ``model_name`` as for :func:`measured`.
    """
    for slice_key, plots in tfma.load_eval_result(evaluation_uri, model_name=model_name).plots:
        if slice_key != ():
            continue
        for per_output in plots.values():
            for per_class in per_output.values():
                if CONFUSION_PLOT in per_class:
                    return counts_from_entries(per_class[CONFUSION_PLOT]["matrices"][0].get("entries", []),
                                               num_classes)
    return None


def counts_from_entries(entries: Iterable[Mapping[str, float]], num_classes: int) -> List[List[int]]:
    """The square matrix of TFMA's sparse entries. Their JSON leaves out fields that are 0 (class 0 is
    an absent ``actualClassId``); ``predictedClassId`` -1 (no class above the threshold) is not counted."""
    counts = [[0] * num_classes for _ in range(num_classes)]
    for entry in entries:
        true, predicted = int(entry.get("actualClassId", 0)), int(entry.get("predictedClassId", 0))
        if not (0 <= true < num_classes and 0 <= predicted < num_classes):
            continue
        counts[true][predicted] += int(round(float(entry.get("numWeightedExamples", 0.0))))
    return counts


def confusion_record(class_names: Sequence[str], counts: Sequence[Sequence[int]]) -> str:
    """The JSON of ``confusion.json``: the class names and ``counts[true][predicted]``."""
    return json.dumps({"class_names": list(class_names), "counts": [list(row) for row in counts]})
