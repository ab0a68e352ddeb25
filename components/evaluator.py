"""GatedEvaluator: TFX's Evaluator measures with TFMA, then :func:`gate.decide` blesses or refuses.

TFMA's ``EvalConfig`` is fixed when the pipeline is compiled and holds no thresholds
here (``pipeline/evaluation.py``). The gate's bounds are execution parameters of
this component (each may be a ``RuntimeParameter`` a Kubeflow run sets); its executor
runs TFX's own Evaluator executor to measure the candidate (and the baseline: the last
blessed model a Resolver gave, or, where there is no Resolver, the version the serving
folder serves now), reads both models' accuracy back, calls the pure
:func:`cifar_tfx.components.gate.decide` and writes the blessing as TFX's Evaluator
would (``BLESSED`` / ``NOT_BLESSED`` file and the ``blessed`` property the Pusher
reads), plus ``gate.json`` with the bounds and the decision and ``confusion.json`` with the
candidate's confusion matrix (the run report draws it: the Evaluator is the one reader of the test split).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Union

from tfx import types
from tfx.components.evaluator import constants
from tfx.components.evaluator import executor as evaluator_executor
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.dsl.io import fileio
from tfx.orchestration import data_types
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import json_utils, path_utils

from cifar_tfx import storage
from cifar_tfx.components.gate import CONFUSION_FILE, GATE_FILE, Bounds, decide, gate_record
from cifar_tfx.serving.model_config import served_version
from cifar_tfx.pipeline.evaluation import (
    BASELINE, CANDIDATE, confusion_counts, confusion_record, make_eval_config, measured)

BOUND_KEYS = ("min_accuracy", "max_regression", "min_class_accuracy")  # the fields of gate.Bounds
CLASS_NAMES_KEY = "class_names"
# Where no Resolver can give the last blessed model (open-source KFP), the baseline is the version
# the serving folder serves now: its folder and the model's name there.
BASELINE_SERVING_DIR_KEY = "baseline_serving_dir"
BASELINE_MODEL_NAME_KEY = "baseline_model_name"

Number = Union[float, data_types.RuntimeParameter]


class GatedEvaluatorSpec(standard_component_specs.EvaluatorSpec):
    """TFX's EvaluatorSpec plus the gate's bounds and the class names."""

    PARAMETERS = {
        **standard_component_specs.EvaluatorSpec.PARAMETERS,
        **{key: ExecutionParameter(type=float) for key in BOUND_KEYS},
        CLASS_NAMES_KEY: ExecutionParameter(type=str),
        BASELINE_SERVING_DIR_KEY: ExecutionParameter(type=str, optional=True),
        BASELINE_MODEL_NAME_KEY: ExecutionParameter(type=str, optional=True),
    }


def write_blessing(blessing: types.Artifact, model: types.Artifact, baseline: Optional[types.Artifact],
                   blessed: bool) -> None:
    """The blessing as TFX's Evaluator writes it (file and properties; the Pusher reads ``blessed``)."""
    blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
    if baseline is not None:
        blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline.uri)
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, baseline.id)
    fileio.makedirs(blessing.uri)
    name = constants.BLESSED_FILE_NAME if blessed else constants.NOT_BLESSED_FILE_NAME
    with fileio.open(os.path.join(blessing.uri, name), "w") as marker:
        marker.write("")
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY,
                                     constants.BLESSED_VALUE if blessed else constants.NOT_BLESSED_VALUE)


class GatedEvaluatorExecutor(evaluator_executor.Executor):
    """TFX's Evaluator executor (measuring only), then the gate."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        properties = dict(exec_properties)
        bounds = Bounds(**{key: float(properties.pop(key)) for key in BOUND_KEYS})
        class_names = json.loads(properties.pop(CLASS_NAMES_KEY))
        serving_dir = properties.pop(BASELINE_SERVING_DIR_KEY, None) or ""
        model_name = properties.pop(BASELINE_MODEL_NAME_KEY, None) or ""
        baselines = input_dict.get(standard_component_specs.BASELINE_MODEL_KEY) or []
        baseline_model = baselines[0] if baselines else None
        baseline_source = baseline_model.uri if baseline_model is not None else ""
        if baseline_model is None and serving_dir:
            baseline_model, baseline_source = self._served_baseline(serving_dir, model_name)
            if baseline_model is not None:
                input_dict = {**input_dict, standard_component_specs.BASELINE_MODEL_KEY: [baseline_model]}
        super().Do(input_dict, output_dict, properties)
        model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
        evaluation_uri = artifact_utils.get_single_uri(output_dict[standard_component_specs.EVALUATION_KEY])
        if baseline_model is None:
            candidate, baseline = measured(evaluation_uri, class_names), None
        else:
            candidate = measured(evaluation_uri, class_names, CANDIDATE)
            baseline = measured(evaluation_uri, class_names, BASELINE)
        decision = decide(candidate, baseline, bounds,
                          "the served model" if serving_dir and not baselines else "the last blessed model")
        with fileio.open(os.path.join(evaluation_uri, GATE_FILE), "w") as record:
            record.write(gate_record(bounds, candidate, baseline, decision, baseline_source))
        counts = confusion_counts(evaluation_uri, len(class_names), None if baseline_model is None else CANDIDATE)
        if counts is not None:
            with fileio.open(os.path.join(evaluation_uri, CONFUSION_FILE), "w") as record:
                record.write(confusion_record(class_names, counts))
        write_blessing(artifact_utils.get_single_instance(output_dict[standard_component_specs.BLESSING_KEY]),
                       model, baselines[0] if baselines else None, decision.blessed)

    def _served_baseline(self, serving_dir: str, model_name: str):
        """``(Model artifact, source folder)`` for the version the serving folder serves now, copied to
        this execution's scratch folder in a Model artifact's layout; ``(None, "")`` when none is served."""
        served = served_version(serving_dir, model_name)
        if served is None:
            logging.info("no baseline: %s serves no version of %s yet", serving_dir, model_name)
            return None, ""
        baseline = standard_artifacts.Model()
        baseline.uri = os.path.join(self._get_tmp_dir(), "served-baseline")
        storage.copy_tree(served[1], path_utils.serving_model_dir(baseline.uri))
        logging.info("baseline: version %d, served from %s", served[0], served[1])
        return baseline, served[1]


class GatedEvaluator(base_beam_component.BaseBeamComponent):
    """Evaluates ``model`` on ``example_splits`` and blesses it if it clears the gate's bounds."""

    SPEC_CLASS = GatedEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(GatedEvaluatorExecutor)

    def __init__(self, *, examples: types.BaseChannel, model: types.BaseChannel, class_names: Sequence[str],
                 min_accuracy: Number, max_regression: Number, min_class_accuracy: Number,
                 baseline_model: Optional[types.BaseChannel] = None, baseline_serving_dir: str = "",
                 baseline_model_name: str = "", example_splits: Sequence[str] = ("test",)) -> None:
        """``baseline_model``: a Resolver's last blessed model; else, with ``baseline_serving_dir``, the
        version that folder serves for ``baseline_model_name`` when the Evaluator runs."""
        spec = GatedEvaluatorSpec(
            examples=examples,
            model=model,
            baseline_model=baseline_model,
            eval_config=make_eval_config(),
            example_splits=json_utils.dumps(list(example_splits)),
            min_accuracy=min_accuracy,
            max_regression=max_regression,
            min_class_accuracy=min_class_accuracy,
            class_names=json.dumps(list(class_names)),
            baseline_serving_dir=baseline_serving_dir,
            baseline_model_name=baseline_model_name,
            evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing),
        )
        super().__init__(spec=spec)
