"""The Evaluator's configuration: what is measured and what blesses a model."""

from __future__ import annotations

import tensorflow_model_analysis as tfma

from cifar_tfx.example_format import LABEL_KEY

ACCURACY = "sparse_categorical_accuracy"


def make_eval_config(min_accuracy: float, max_regression: float) -> tfma.EvalConfig:
    """Accuracy overall and per class, confusion matrix and example count on ``serving_default``.

    Blessing needs accuracy >= ``min_accuracy`` and, when a previously blessed model
    is given as baseline, accuracy >= baseline accuracy - ``max_regression``.
    """
    threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": min_accuracy}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -max_regression}),
    )
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name="serving_default", label_key=LABEL_KEY,
                                    prediction_key="probabilities", preprocessing_function_names=[])],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[LABEL_KEY])],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            # The bounds apply to the overall slice only; per-class accuracy is reported, not gated.
            tfma.MetricConfig(class_name="SparseCategoricalAccuracy", per_slice_thresholds=[
                tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)]),
            tfma.MetricConfig(class_name="ExampleCount"),
            tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
        ])],
    )


def with_min_accuracy(eval_config: tfma.EvalConfig, min_accuracy: float) -> tfma.EvalConfig:
    """A copy of ``eval_config`` whose accuracy lower bounds are all ``min_accuracy``."""
    if not 0.0 <= min_accuracy <= 1.0:
        raise ValueError(f"min_accuracy must be within [0, 1], got {min_accuracy}")
    config = tfma.EvalConfig()
    config.CopyFrom(eval_config)
    for spec in config.metrics_specs:
        for metric in spec.metrics:
            for per_slice in metric.per_slice_thresholds:
                if per_slice.threshold.HasField("value_threshold"):
                    per_slice.threshold.value_threshold.lower_bound.value = min_accuracy
    return config
