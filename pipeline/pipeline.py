"""``create_pipeline``: the CIFAR TFX pipeline, independent of where it runs.

The function only wires components; runners (``local_runner``, the Kubeflow
compiler) choose paths, metadata stores and Beam options and pass them in.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from tfx.components import ExampleValidator, SchemaGen, StatisticsGen
from tfx.orchestration import pipeline as tfx_pipeline

from cifar_tfx.components.data_validation import AnomalyGate, PinSchema
from cifar_tfx.components.example_gen import CifarExampleGen
from cifar_tfx.data.datasets import DatasetSpec


def create_pipeline(
    *,
    pipeline_name: str,
    pipeline_root: str,
    data_path: str,
    dataset: DatasetSpec,
    metadata_connection_config: Optional[object] = None,
    beam_pipeline_args: Sequence[str] = (),
    num_shards: int = 4,
) -> tfx_pipeline.Pipeline:
    """Build the pipeline: ingest, then validate the data.

    Args:
      pipeline_name: name recorded in ML Metadata.
      pipeline_root: where artifacts are written.
      data_path: official archive, extracted folder or ``data synth`` output.
      dataset: shape and classes the data must have.
      metadata_connection_config: ML Metadata store (``None``: the runner's default).
      beam_pipeline_args: options for the Beam-based components.
      num_shards: TFRecord shards per split written by ExampleGen.
    """
    example_gen = CifarExampleGen(data_path=data_path, dataset=dataset.name, num_shards=num_shards)
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
    components: List[object] = [
        example_gen, statistics_gen, schema_gen, pin_schema, example_validator, anomaly_gate,
    ]
    return tfx_pipeline.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=False,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(beam_pipeline_args),
    )
