"""Compile the pipeline for Kubeflow Pipelines 2 (a ``PipelineSpec`` YAML), the Trainer on a GPU node.

TFX 1.16's ``KubeflowV2DagRunner`` writes a KFP-2 ``PipelineSpec`` when its output
file ends in ``.yaml``; upload that file to a KFP 2 deployment (or Vertex AI
Pipelines). The open-source KFP 2 backend cannot run TFX ``Resolver`` nodes, so the
compiled pipeline has no baseline-model comparison: the Evaluator gates on the
absolute accuracy bound only (Vertex AI can run the resolver: ``--with-baseline``).

Every container needs ``TF_USE_LEGACY_KERAS=1`` (tensorflow-transform 1.16 requires
Keras 2): the image built from ``kubeflow/Dockerfile`` sets it.
"""

from __future__ import annotations

import dataclasses
import os

from cifar_tfx.data.datasets import DatasetSpec
from cifar_tfx.trainer.hparams import HParams


@dataclasses.dataclass(frozen=True)
class KubeflowTarget:
    """Where a KFP run reads and writes, and what the Trainer node gets."""

    image: str                     # container image with this project installed
    pipeline_root: str             # e.g. gs://bucket/cifar-tfx/root
    data_path: str                 # archive or folder visible to the ExampleGen container
    serving_dir: str               # TF Serving base folder visible to the Pusher container
    model_name: str = "cifar10"
    trainer_gpus: int = 1
    gpu_type: str = "NVIDIA_TESLA_T4"
    trainer_cpus: float = 8.0
    trainer_memory_gb: float = 32.0
    with_baseline: bool = False    # True only for Vertex AI (needs Resolver support)


def trainer_resources(target: KubeflowTarget):
    """The Trainer's ``ResourceSpec``: CPUs, memory and ``trainer_gpus`` accelerators."""
    from kfp.pipeline_spec import pipeline_spec_pb2 as pipeline_pb2

    spec = pipeline_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec
    resources = spec(cpu_limit=target.trainer_cpus, memory_limit=target.trainer_memory_gb)
    if target.trainer_gpus:
        resources.accelerator.CopyFrom(spec.AcceleratorConfig(type=target.gpu_type, count=target.trainer_gpus))
    return resources


def compile_pipeline(target: KubeflowTarget, dataset: DatasetSpec, hparams: HParams, output_file: str,
                     pipeline_name: str = "cifar10-resnet") -> str:
    """Write the KFP-2 pipeline spec to ``output_file`` (must end in ``.yaml`` or ``.json``)."""
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    from cifar_tfx.pipeline.pipeline import create_pipeline

    pipeline = create_pipeline(
        pipeline_name=pipeline_name, pipeline_root=target.pipeline_root, data_path=target.data_path,
        dataset=dataset, hparams=hparams, serving_dir=target.serving_dir, model_name=target.model_name,
        compare_with_last_blessed=target.with_baseline, trainer_resources=trainer_resources(target),
        beam_pipeline_args=["--direct_num_workers=0", "--direct_running_mode=multi_processing"],
    )
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(default_image=target.image),
        output_dir=os.path.dirname(os.path.abspath(output_file)),
        output_filename=os.path.basename(output_file),
    )
    runner.run(pipeline)
    return output_file
