"""CifarTrainer: TFX's Trainer with the training length as two parameters that a pipeline run can set.

The standard Trainer takes its settings in ``custom_config``, one JSON string fixed
when the pipeline is compiled. Kubeflow users choose how long to train when they
submit a run, so this component adds two execution parameters, ``epochs`` and
``time_budget_minutes`` (0 means "the profile's value"), which may be
``RuntimeParameter``s; its executor folds them into the hyperparameters in
``custom_config`` and then runs TFX's own generic Trainer executor unchanged.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Union

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.orchestration import data_types
from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter

from cifar_tfx.trainer.hparams import HParams, with_training_length
from cifar_tfx.trainer.run_fn import HPARAMS_KEY

EPOCHS_KEY = "epochs"
MINUTES_KEY = "time_budget_minutes"

Number = Union[float, data_types.RuntimeParameter]


class CifarTrainerSpec(standard_component_specs.TrainerSpec):
    """TFX's TrainerSpec plus the training length."""

    PARAMETERS = {
        **standard_component_specs.TrainerSpec.PARAMETERS,
        EPOCHS_KEY: ExecutionParameter(type=float),
        MINUTES_KEY: ExecutionParameter(type=float),
    }


def fold_training_length(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of ``exec_properties`` whose ``custom_config`` hyperparameters carry the training length."""
    properties = dict(exec_properties)
    epochs = float(properties.pop(EPOCHS_KEY, 0.0) or 0.0)
    minutes = float(properties.pop(MINUTES_KEY, 0.0) or 0.0)
    config = json.loads(properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "{}")
    hparams = with_training_length(HParams.from_json(config[HPARAMS_KEY]), epochs=epochs, minutes=minutes)
    config[HPARAMS_KEY] = hparams.training_key()
    properties[standard_component_specs.CUSTOM_CONFIG_KEY] = json.dumps(config, sort_keys=True)
    return properties


class CifarTrainerExecutor(trainer_executor.GenericExecutor):
    """TFX's generic Trainer executor after :func:`fold_training_length`."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        super().Do(input_dict, output_dict, fold_training_length(exec_properties))


class CifarTrainer(base_component.BaseComponent):
    """Trains with ``run_fn`` on the ``train`` split and evaluates on ``test``."""

    SPEC_CLASS = CifarTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(CifarTrainerExecutor)

    def __init__(self, *, run_fn: str, examples: types.BaseChannel, transform_graph: types.BaseChannel,
                 schema: types.BaseChannel, custom_config: Dict[str, Any], epochs: Number = 0.0,
                 time_budget_minutes: Number = 0.0) -> None:
        """``epochs`` / ``time_budget_minutes``: 0 keeps the length in ``custom_config``'s hparams."""
        spec = CifarTrainerSpec(
            examples=examples,
            transform_graph=transform_graph,
            schema=schema,
            train_args=trainer_pb2.TrainArgs(splits=["train"]),
            eval_args=trainer_pb2.EvalArgs(splits=["test"]),
            run_fn=run_fn,
            custom_config=json.dumps(custom_config, sort_keys=True),
            **{EPOCHS_KEY: epochs, MINUTES_KEY: time_budget_minutes},
            model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun),
        )
        super().__init__(spec=spec)
