"""``create_pipeline``: the CIFAR TFX pipeline, independent of where it runs.

The function only wires components; runners (``local_runner``, the Kubeflow
compiler) choose paths, metadata stores and Beam options and pass them in.
"""

from __future__ import annotations

import os
from typing import List, Mapping, Optional, Sequence, Union

from tfx.components import ExampleValidator, Pusher, SchemaGen, StatisticsGen, Transform
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.dsl.components.common import resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.orchestration import data_types
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import pusher_pb2
from tfx.types import Channel
from tfx.types.standard_artifacts import Model, ModelBlessing

from cifar_tfx.components.data_validation import AnomalyGate, PinSchema
from cifar_tfx.components.evaluator import BOUND_KEYS, GatedEvaluator
from cifar_tfx.components.example_gen import CifarExampleGen
from cifar_tfx.components.serving_pusher import (CLASS_NAMES_KEY, MAX_LATENCY_KEY, SERVER_BASE_PATH_KEY,
                                                 ServingDirPusherExecutor)
from cifar_tfx.components.trainer import CifarTrainer
from cifar_tfx.data.datasets import DEFAULT_DATASET, DatasetSpec
from cifar_tfx.pipeline import component_ids as ids
from cifar_tfx.trainer import run_fn as trainer_entry
from cifar_tfx.trainer.hparams import GATE_FIELDS, HParams

PREPROCESSING_FN = "cifar_tfx.trainer.preprocessing.preprocessing_fn"
RUN_FN = "cifar_tfx.trainer.run_fn.run_fn"

# A value fixed when the pipeline is built, or a pipeline parameter set per run (Kubeflow).
Text = Union[str, data_types.RuntimeParameter]
Value = Union[int, float, str, data_types.RuntimeParameter]


def create_pipeline(
    *,
    pipeline_name: str,
    pipeline_root: str,
    data_path: Text,
    dataset: DatasetSpec,
    hparams: HParams,
    serving_dir: str,
    model_name: str = DEFAULT_DATASET,
    compare_with_last_blessed: bool = True,
    data_fingerprint: Union[str, data_types.RuntimeParameter] = "",
    metadata_connection_config: Optional[object] = None,
    beam_pipeline_args: Sequence[str] = (),
    num_shards: int = 4,
    enable_cache: bool = True,
    run_values: Mapping[str, Value] = {},  # noqa: B006 - read only
    trainer_required_gpus: int = 0,
    resources: Mapping[str, object] = {},  # noqa: B006 - read only
    server_base_path: str = "",
) -> tfx_pipeline.Pipeline:
    """Build the pipeline: ingest, validate, transform, train, evaluate, push.

    Longer than 60 lines on purpose: every component is wired here, in pipeline order, so that
    the whole graph reads in one place (as in TFX's templates); each component's logic lives in
    its own module.

    Args:
      pipeline_name: name recorded in ML Metadata.
      pipeline_root: where artifacts are written.
      data_path: official archive, extracted folder or ``data synth`` output (local or a URI).
      dataset: shape and classes the data must have.
      hparams: training hyperparameters and the Evaluator's bounds.
      serving_dir: TF Serving base folder; blessed models go to ``serving_dir/model_name/<n>``.
      model_name: the model's name in TF Serving.
      compare_with_last_blessed: add a Resolver for the last blessed model as the
        Evaluator's baseline. Open-source KFP cannot run Resolver nodes: pass False there,
        and the baseline is the version the serving folder serves when the Evaluator runs.
      data_fingerprint: the runner's fingerprint of the data at ``data_path``; part of
        ExampleGen's parameters so that a cached ingestion of older data is not reused
        (ExampleGen records its own fingerprint whatever the runner passes).
      metadata_connection_config: ML Metadata store (``None``: the runner's default).
      beam_pipeline_args: options for the Beam-based components (and only those).
      num_shards: TFRecord shards per split written by ExampleGen.
      enable_cache: reuse outputs of components whose inputs and parameters are unchanged.
      run_values: values of ``hparams`` fields declared run parameters (``run_parameter_fields``)
        that a run sets, by field name: ``RuntimeParameter``s on Kubeflow. Training fields go to
        the Trainer (which folds them into ``hparams``), the gate's to the Evaluator; a field not
        given keeps ``hparams``'s value.
      trainer_required_gpus: GPUs the Trainer's node was given; the Trainer fails if TensorFlow
        sees fewer (0: no check, the Trainer uses what it finds).
      resources: KFP ``ResourceSpec`` per component id (CPU, memory, GPUs); local runs ignore it.
      server_base_path: the serving folder as TF Serving will see it (``/models`` in its container),
        written into ``models.config``; "" = the folder's own path.
    """
    example_gen = CifarExampleGen(data_path=data_path, dataset=dataset.name, num_shards=num_shards,
                                  data_fingerprint=data_fingerprint).with_id(ids.EXAMPLE_GEN)
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"]).with_id(ids.STATISTICS_GEN)
    schema_gen = SchemaGen(statistics=statistics_gen.outputs["statistics"],
                           infer_feature_shape=True).with_id(ids.SCHEMA_GEN)
    pin_schema = PinSchema(
        schema=schema_gen.outputs["schema"],
        num_classes=dataset.num_classes,
        height=dataset.height,
        width=dataset.width,
        channels=dataset.channels,
    ).with_id(ids.PIN_SCHEMA)
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=pin_schema.outputs["pinned_schema"],
    ).with_id(ids.EXAMPLE_VALIDATOR)
    anomaly_gate = AnomalyGate(anomalies=example_validator.outputs["anomalies"]).with_id(ids.ANOMALY_GATE)
    shape = {"height": dataset.height, "width": dataset.width, "channels": dataset.channels}
    transform = Transform(
        examples=example_gen.outputs["examples"],
        schema=pin_schema.outputs["pinned_schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config=shape,
        materialize=False,  # the Trainer applies the graph in its input pipeline: see BENCHMARKS.md
        # StatisticsGen already describes the raw data; Transform's own pre- and post-transform
        # statistics (a second pass over the training split) and its analyzer cache (read only when
        # an ``analyzer_cache`` input is wired, which it is not) had no reader. Without them
        # Transform took 8 s instead of 33 s, and the run's peak memory fell from 4.4 to 1.8 GiB
        # (BENCHMARKS.md, "Where the time around a budget goes").
        disable_statistics=True,
        disable_analyzer_cache=True,
    ).with_id(ids.TRANSFORM)
    transform.add_upstream_node(anomaly_gate)  # nothing trains on data that failed validation
    trainer = CifarTrainer(
        run_fn=RUN_FN,
        examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=pin_schema.outputs["pinned_schema"],
        custom_config={
            # Without the gate's bounds: changing a bound re-evaluates but does not retrain.
            trainer_entry.HPARAMS_KEY: hparams.training_key(),
            trainer_entry.DATASET_KEY: dataset.name,
        },
        run_values={name: value for name, value in run_values.items() if name not in GATE_FIELDS},
        required_gpus=trainer_required_gpus,
    ).with_id(ids.TRAINER)
    components: List[object] = [
        example_gen, statistics_gen, schema_gen, pin_schema, example_validator, anomaly_gate,
        transform, trainer,
    ]
    baseline = None
    if compare_with_last_blessed:
        last_blessed = resolver.Resolver(
            strategy_class=LatestBlessedModelStrategy,
            model=Channel(type=Model),
            model_blessing=Channel(type=ModelBlessing),
        ).with_id(ids.LAST_BLESSED_MODEL)
        baseline = last_blessed.outputs["model"]
        components.append(last_blessed)
    bounds = {name: run_values.get(name, getattr(hparams, name)) for name in BOUND_KEYS}
    evaluator = GatedEvaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline,
        baseline_serving_dir="" if compare_with_last_blessed else serving_dir,
        baseline_model_name="" if compare_with_last_blessed else model_name,
        class_names=dataset.class_names,
        **bounds,
    ).with_id(ids.EVALUATOR)
    pusher = Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(
            base_directory=os.path.join(serving_dir, model_name))),
        custom_executor_spec=executor_spec.ExecutorClassSpec(ServingDirPusherExecutor),
        custom_config={CLASS_NAMES_KEY: list(dataset.class_names), MAX_LATENCY_KEY: hparams.max_serving_latency_ms,
                       SERVER_BASE_PATH_KEY: server_base_path},
    ).with_id(ids.PUSHER)
    components += [evaluator, pusher]
    for component in components:
        if beam_pipeline_args and isinstance(component, base_beam_component.BaseBeamComponent):
            component.with_beam_pipeline_args(list(beam_pipeline_args))
        if component.id in resources:
            component.with_platform_config(resources[component.id])
    unknown = set(resources) - {component.id for component in components}
    if unknown:
        raise ValueError(f"resources name unknown component(s) {sorted(unknown)}")
    return tfx_pipeline.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
    )
