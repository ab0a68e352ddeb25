"""The Evaluator's configuration (what TFMA measures) and the one reader of what it measured.

The gate's bounds are not in the ``EvalConfig``: TFMA measures, ``components/gate.py`` decides.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

import tensorflow_model_analysis as tfma

from cifar_tfx.components.gate import Metrics, class_accuracies
from cifar_tfx.example_format import LABEL_KEY
from cifar_tfx.model_contract import EXAMPLES_SIGNATURE

ACCURACY = "sparse_categorical_accuracy"
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
