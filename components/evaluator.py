"""GatedEvaluator: TFX's Evaluator with the gate's minimum accuracy as a parameter a run can set.

TFMA's ``EvalConfig`` is one proto fixed when the pipeline is compiled; a Kubeflow
user sets the bound when submitting a run. This component adds the execution
parameter ``min_accuracy`` (which may be a ``RuntimeParameter``); its executor
writes it into every accuracy lower bound of the ``EvalConfig`` and then runs TFX's
own Evaluator executor unchanged.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union

import tensorflow_model_analysis as tfma
from tfx import types
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.orchestration import data_types
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import json_utils, proto_utils

from cifar_tfx.pipeline.evaluation import with_min_accuracy

MIN_ACCURACY_KEY = "min_accuracy"


class GatedEvaluatorSpec(standard_component_specs.EvaluatorSpec):
    """TFX's EvaluatorSpec plus the minimum accuracy."""

    PARAMETERS = {
        **standard_component_specs.EvaluatorSpec.PARAMETERS,
        MIN_ACCURACY_KEY: ExecutionParameter(type=float),
    }


def apply_min_accuracy(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of ``exec_properties`` whose ``eval_config`` bounds are its ``min_accuracy``."""
    properties = dict(exec_properties)
    min_accuracy = float(properties.pop(MIN_ACCURACY_KEY))
    config = tfma.EvalConfig()
    proto_utils.json_to_proto(properties[standard_component_specs.EVAL_CONFIG_KEY], config)
    properties[standard_component_specs.EVAL_CONFIG_KEY] = proto_utils.proto_to_json(
        with_min_accuracy(config, min_accuracy))
    return properties


class GatedEvaluatorExecutor(evaluator_executor.Executor):
    """TFX's Evaluator executor after :func:`apply_min_accuracy`."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        super().Do(input_dict, output_dict, apply_min_accuracy(exec_properties))


class GatedEvaluator(base_beam_component.BaseBeamComponent):
    """Evaluates ``model`` on ``example_splits`` and blesses it if it clears the gate."""

    SPEC_CLASS = GatedEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(GatedEvaluatorExecutor)

    def __init__(self, *, examples: types.BaseChannel, model: types.BaseChannel,
                 eval_config: tfma.EvalConfig, min_accuracy: Union[float, data_types.RuntimeParameter],
                 baseline_model: Optional[types.BaseChannel] = None,
                 example_splits: Sequence[str] = ("test",)) -> None:
        spec = GatedEvaluatorSpec(
            examples=examples,
            model=model,
            baseline_model=baseline_model,
            eval_config=eval_config,
            example_splits=json_utils.dumps(list(example_splits)),
            min_accuracy=min_accuracy,
            evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing),
        )
        super().__init__(spec=spec)
