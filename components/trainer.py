"""CifarTrainer: TFX's Trainer with the training hyperparameters a pipeline run may set as parameters.

The standard Trainer takes its settings in ``custom_config``, one JSON string fixed
when the pipeline is compiled. Kubeflow users choose the network, its size, the length
and the training recipe when they submit a run, so this component adds one optional
execution parameter per training field that ``HParams`` declares a run parameter
(``run_parameter_fields``, typed by ``run_parameter_kind``: true / false fields travel
as ``on`` / ``off``); each may be a ``RuntimeParameter``. Its executor
folds the values given into the hyperparameters in ``custom_config``
(``with_run_values``) and then runs TFX's own generic Trainer executor unchanged.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Union

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.orchestration import data_types
from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter

from cifar_tfx import console
from cifar_tfx.trainer.hparams import HParams, run_parameter_kind, training_run_fields, with_run_values
from cifar_tfx.trainer.run_fn import HPARAMS_KEY
from cifar_tfx.trainer.runtime import check_gpus, visible_devices

TRAINING_RUN_FIELDS = training_run_fields()
REQUIRED_GPUS_KEY = "required_gpus"  # GPUs the deployment gave this task; fewer visible fails the task

Value = Union[int, float, str, data_types.RuntimeParameter]


class CifarTrainerSpec(standard_component_specs.TrainerSpec):
    """TFX's TrainerSpec plus the training run parameters and the GPUs the task was given."""

    PARAMETERS = {
        **standard_component_specs.TrainerSpec.PARAMETERS,
        **{name: ExecutionParameter(type=run_parameter_kind(name), optional=True) for name in TRAINING_RUN_FIELDS},
        REQUIRED_GPUS_KEY: ExecutionParameter(type=int, optional=True),
    }


def fold_run_values(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of ``exec_properties`` whose ``custom_config`` hyperparameters carry the run's values."""
    properties = dict(exec_properties)
    values = {name: properties.pop(name) for name in TRAINING_RUN_FIELDS if properties.get(name) is not None}
    config = json.loads(properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "{}")
    hparams = with_run_values(HParams.from_json(config[HPARAMS_KEY]), values)
    config[HPARAMS_KEY] = hparams.training_key()
    properties[standard_component_specs.CUSTOM_CONFIG_KEY] = json.dumps(config, sort_keys=True)
    return properties


class CifarTrainerExecutor(trainer_executor.GenericExecutor):
    """TFX's generic Trainer executor after a device check and :func:`fold_run_values`."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        properties = dict(exec_properties)
        required_gpus = int(properties.pop(REQUIRED_GPUS_KEY, 0) or 0)
        console.say(check_gpus(required_gpus, visible_devices()))
        super().Do(input_dict, output_dict, fold_run_values(properties))


class CifarTrainer(base_component.BaseComponent):
    """Trains with ``run_fn`` on the ``train`` split.

    TFX hands every Trainer an eval split (``test`` here, since without one it assumes ``eval``);
    ``run_fn`` does not read it: the Evaluator is the one reader of the test split.
    """

    SPEC_CLASS = CifarTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(CifarTrainerExecutor)

    def __init__(self, *, run_fn: str, examples: types.BaseChannel, transform_graph: types.BaseChannel,
                 schema: types.BaseChannel, custom_config: Dict[str, Any],
                 run_values: Mapping[str, Value] = {}, required_gpus: int = 0) -> None:  # noqa: B006 - read only
        """``run_values``: training fields (``TRAINING_RUN_FIELDS``) a run sets, overriding ``custom_config``'s
        hparams (see ``with_run_values``). ``required_gpus``: the task fails before training when
        TensorFlow sees fewer GPUs."""
        spec = CifarTrainerSpec(
            examples=examples,
            transform_graph=transform_graph,
            schema=schema,
            train_args=trainer_pb2.TrainArgs(splits=["train"]),
            eval_args=trainer_pb2.EvalArgs(splits=["test"]),
            run_fn=run_fn,
            custom_config=json.dumps(custom_config, sort_keys=True),
            **dict(run_values), **{REQUIRED_GPUS_KEY: required_gpus},
            model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun),
        )
        super().__init__(spec=spec)
