"""``create_pipeline``: the CIFAR TFX pipeline, independent of where it runs.

The function only wires components; runners (``local_runner``, the Kubeflow
compiler) choose paths, metadata stores and Beam options and pass them in.
"""

from __future__ import annotations

import hashlib
import os
from typing import List, Optional, Sequence

from tfx.components import Evaluator, ExampleValidator, Pusher, SchemaGen, StatisticsGen, Trainer, Transform
from tfx.dsl.components.base import executor_spec
from tfx.dsl.components.common import resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import pusher_pb2, trainer_pb2
from tfx.types import Channel
from tfx.types.standard_artifacts import Model, ModelBlessing

from cifar_tfx.components.data_validation import AnomalyGate, PinSchema
from cifar_tfx.components.example_gen import CifarExampleGen
from cifar_tfx.components.serving_pusher import ServingDirPusherExecutor
from cifar_tfx.data.datasets import DatasetSpec
from cifar_tfx.pipeline.evaluation import make_eval_config
from cifar_tfx.trainer import run_fn as trainer_entry
from cifar_tfx.trainer.hparams import HParams

PREPROCESSING_FN = "cifar_tfx.trainer.preprocessing.preprocessing_fn"
RUN_FN = "cifar_tfx.trainer.run_fn.run_fn"


def checkpoint_dir_for(pipeline_root: str, hparams: HParams, data_fingerprint: str) -> str:
    """A checkpoint folder that a re-run of the same training finds again (crash resume)."""
    key = hashlib.sha256((hparams.training_key() + data_fingerprint).encode()).hexdigest()[:16]
    return os.path.join(pipeline_root, "checkpoints", key)


def create_pipeline(
    *,
    pipeline_name: str,
    pipeline_root: str,
    data_path: str,
    dataset: DatasetSpec,
    hparams: HParams,
    serving_dir: str,
    model_name: str = "cifar10",
    compare_with_last_blessed: bool = True,
    data_fingerprint: str = "",
    metadata_connection_config: Optional[object] = None,
    beam_pipeline_args: Sequence[str] = (),
    num_shards: int = 4,
    enable_cache: bool = True,
    trainer_resources: Optional[object] = None,
) -> tfx_pipeline.Pipeline:
    """Build the pipeline: ingest, validate, transform, train, evaluate, push.

    Args:
      pipeline_name: name recorded in ML Metadata.
      pipeline_root: where artifacts are written.
      data_path: official archive, extracted folder or ``data synth`` output.
      dataset: shape and classes the data must have.
      hparams: training hyperparameters and the Evaluator's bounds.
      serving_dir: TF Serving base folder; blessed models go to ``serving_dir/model_name/<n>``.
      model_name: the model's name in TF Serving.
      compare_with_last_blessed: add a Resolver for the last blessed model as the
        Evaluator's baseline. Open-source KFP cannot run Resolver nodes: pass False there.
      data_fingerprint: changes whenever the data at ``data_path`` changes; part of
        ExampleGen's parameters so that a cached ingestion of older data is not reused.
      metadata_connection_config: ML Metadata store (``None``: the runner's default).
      beam_pipeline_args: options for the Beam-based components.
      num_shards: TFRecord shards per split written by ExampleGen.
      enable_cache: reuse outputs of components whose inputs and parameters are
        unchanged (a re-run after a Trainer crash then resumes the same training).
      trainer_resources: a KFP ``ResourceSpec`` for the Trainer (GPUs); local runners ignore it.
    """
    example_gen = CifarExampleGen(data_path=data_path, dataset=dataset.name, num_shards=num_shards,
                                  data_fingerprint=data_fingerprint)
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    pin_schema = PinSchema(
        schema=schema_gen.outputs["schema"],
        num_classes=dataset.num_classes,
        height=dataset.height,
        width=dataset.width,
        channels=dataset.channels,
    )
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=pin_schema.outputs["pinned_schema"],
    )
    anomaly_gate = AnomalyGate(anomalies=example_validator.outputs["anomalies"])
    shape = {"height": dataset.height, "width": dataset.width, "channels": dataset.channels}
    transform = Transform(
        examples=example_gen.outputs["examples"],
        schema=pin_schema.outputs["pinned_schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config=shape,
        materialize=False,  # the Trainer applies the graph in its input pipeline: see BENCHMARKS.md
    )
    transform.add_upstream_node(anomaly_gate)  # nothing trains on data that failed validation
    trainer = Trainer(
        run_fn=RUN_FN,
        examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=pin_schema.outputs["pinned_schema"],
        train_args=trainer_pb2.TrainArgs(splits=["train"]),
        eval_args=trainer_pb2.EvalArgs(splits=["test"]),
        custom_config={
            # Without the gate's bounds: changing a bound re-evaluates but does not retrain.
            trainer_entry.HPARAMS_KEY: hparams.training_key(),
            trainer_entry.DATASET_KEY: dataset.name,
            trainer_entry.CHECKPOINT_DIR_KEY: checkpoint_dir_for(pipeline_root, hparams, data_fingerprint),
        },
    )
    if trainer_resources is not None:
        trainer.with_platform_config(trainer_resources)
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
        ).with_id("last_blessed_model")
        baseline = last_blessed.outputs["model"]
        components.append(last_blessed)
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline,
        example_splits=["test"],
        eval_config=make_eval_config(hparams.min_accuracy, hparams.max_regression),
    )
    pusher = Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(
            base_directory=os.path.join(serving_dir, model_name))),
        custom_executor_spec=executor_spec.ExecutorClassSpec(ServingDirPusherExecutor),
    )
    components += [evaluator, pusher]
    return tfx_pipeline.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(beam_pipeline_args),
    )
