"""Compile the pipeline into a Kubeflow Pipelines 2 ``PipelineSpec`` that a cluster accepts and runs.

Two targets, one pipeline (``create_pipeline``):

* ``kfp``, the open-source KFP 2 backend. Its API server takes only schema 2.1.0
  specs, its driver turns an accelerator type straight into a Kubernetes resource
  name (so the Trainer asks for ``nvidia.com/gpu``), and it cannot run TFX
  ``Resolver`` nodes (so the gate uses the absolute bound only). Volumes and node
  selectors go into the spec's second YAML document, a ``PlatformSpec`` whose
  Kubernetes executor configs are built with the ``kfp-kubernetes`` package's protos.
* ``vertex``, Vertex AI Pipelines: the same spec with Vertex's accelerator names
  (``NVIDIA_TESLA_T4``) and the last-blessed-model Resolver as the gate's baseline.

Both write ``defaultPipelineRoot`` and four pipeline parameters that a user sets
when submitting a run (``PIPELINE_PARAMETERS``); their defaults come from the profile.
ExampleGen's task is never cached: KFP's cache recognises inputs by identity, not by
content, so only a fresh ingestion can notice new data at the same path.

Every container needs ``TF_USE_LEGACY_KERAS=1`` (tensorflow-transform 1.16 requires
Keras 2): the image built from ``kubeflow/Dockerfile`` sets it.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from cifar_tfx import storage
from cifar_tfx.data.datasets import DatasetSpec
from cifar_tfx.trainer.hparams import HParams

TARGETS = ("kfp", "vertex")
DEFAULT_GPU_TYPE = {"kfp": "nvidia.com/gpu", "vertex": "NVIDIA_TESLA_T4"}
# Components that read all the data; they get CPU and memory requests of their own.
HEAVY_COMPONENTS = ("CifarExampleGen", "StatisticsGen", "Transform", "Evaluator")
EXAMPLE_GEN = "CifarExampleGen"
TRAINER = "Trainer"
PUSHER = "Pusher"
# Beam in the containers: the DirectRunner with one worker process per CPU.
DEFAULT_BEAM_ARGS = ("--direct_num_workers=0", "--direct_running_mode=multi_processing")


@dataclasses.dataclass(frozen=True)
class PipelineParameters:
    """Names of the run-time parameters of the compiled pipeline (the root's inputs)."""

    data_path: str = "data_path"
    epochs: str = "epochs"
    time_budget_minutes: str = "time_budget_minutes"
    min_accuracy: str = "min_accuracy"


PIPELINE_PARAMETERS = PipelineParameters()


@dataclasses.dataclass(frozen=True)
class VolumeMount:
    """A PersistentVolumeClaim mounted into one or more tasks (open-source KFP only)."""

    claim: str        # PVC name in the run's namespace
    mount_path: str   # where the containers see it

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", self.claim):
            raise ValueError(f"{self.claim!r} is not a Kubernetes PVC name (lower-case letters, digits, '-', '.')")
        if not self.mount_path.startswith("/"):
            raise ValueError(f"mount path {self.mount_path!r} must be absolute")

    def holds(self, path: str) -> bool:
        mount = self.mount_path.rstrip("/")
        return path.rstrip("/") == mount or path.startswith(mount + "/")


@dataclasses.dataclass(frozen=True)
class KubeflowTarget:
    """Where a run reads and writes, and what each node gets."""

    image: str                       # container image built from kubeflow/Dockerfile
    pipeline_root: str               # gs://bucket/cifar-tfx (TensorFlow reads and writes it directly)
    data_path: str                   # default of the data_path parameter, as the containers see it
    serving_dir: str                 # TF Serving base folder as the Pusher sees it (gs:// or a mounted volume)
    target: str = "kfp"              # "kfp" (open source) or "vertex"
    model_name: str = "cifar10"
    trainer_gpus: int = 1
    gpu_type: str = ""               # "" = the target's default (DEFAULT_GPU_TYPE)
    trainer_cpus: float = 8.0
    trainer_memory_gb: float = 32.0
    heavy_cpus: float = 2.0          # request of each HEAVY_COMPONENTS task
    heavy_memory_gb: float = 8.0
    data_volume: Optional[VolumeMount] = None      # kfp: PVC holding the data, mounted into ExampleGen
    serving_volume: Optional[VolumeMount] = None   # kfp: PVC holding serving_dir, mounted into the Pusher
    gpu_node_selector: Tuple[Tuple[str, str], ...] = ()  # kfp: node labels the Trainer pod must match
    beam_args: Tuple[str, ...] = DEFAULT_BEAM_ARGS

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        if not storage.is_remote(self.pipeline_root):
            raise ValueError(f"pipeline root {self.pipeline_root!r} must be an object-store URI such as "
                             "gs://bucket/path: every task reads and writes artifacts there")
        if self.trainer_gpus < 0:
            raise ValueError("trainer_gpus must be >= 0")
        for value, name in ((self.trainer_cpus, "trainer_cpus"), (self.trainer_memory_gb, "trainer_memory_gb"),
                            (self.heavy_cpus, "heavy_cpus"), (self.heavy_memory_gb, "heavy_memory_gb")):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.target == "vertex" and (self.data_volume or self.serving_volume or self.gpu_node_selector):
            raise ValueError("volumes and node selectors are Kubernetes settings: only for --target kfp")
        for volume, path, what in ((self.data_volume, self.data_path, "data path"),
                                   (self.serving_volume, self.serving_dir, "serving dir")):
            if volume is not None and not volume.holds(path):
                raise ValueError(f"{what} {path!r} is not under the volume mounted at {volume.mount_path!r}")
        if self.target == "kfp":
            for path, volume, what in ((self.data_path, self.data_volume, "--data"),
                                       (self.serving_dir, self.serving_volume, "--serving-dir")):
                if not storage.is_remote(path) and volume is None:
                    raise ValueError(f"{what} {path!r} is a local path: give the PVC that holds it "
                                     f"({what}-pvc) or use a gs:// URI")

    @property
    def accelerator_type(self) -> str:
        return self.gpu_type or DEFAULT_GPU_TYPE[self.target]


def default_parameter_values(hparams: HParams, data_path: str) -> Dict[str, Any]:
    """The pipeline parameters' defaults: the data path and the profile's length and gate."""
    return {
        PIPELINE_PARAMETERS.data_path: data_path,
        # 0 keeps the profile's length (a profile counted in steps keeps its steps).
        PIPELINE_PARAMETERS.epochs: float(hparams.epochs or 0.0) if hparams.time_budget_minutes is None else 0.0,
        PIPELINE_PARAMETERS.time_budget_minutes: float(hparams.time_budget_minutes or 0.0),
        PIPELINE_PARAMETERS.min_accuracy: float(hparams.min_accuracy),
    }


def node_resources(target: KubeflowTarget) -> Dict[str, Any]:
    """``ResourceSpec`` per component id: requests for the heavy ones, GPUs for the Trainer alone."""
    from kfp.pipeline_spec import pipeline_spec_pb2

    resource_spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec
    if target.target == "kfp":  # Kubernetes schedules on requests
        heavy = dict(cpu_request=target.heavy_cpus, memory_request=target.heavy_memory_gb)
    else:  # Vertex AI picks a machine type from the limits
        heavy = dict(cpu_limit=target.heavy_cpus, memory_limit=target.heavy_memory_gb)
    resources = {name: resource_spec(**heavy) for name in HEAVY_COMPONENTS}
    trainer = resource_spec(cpu_limit=target.trainer_cpus, memory_limit=target.trainer_memory_gb)
    if target.target == "kfp":
        trainer.cpu_request = target.trainer_cpus
        trainer.memory_request = target.trainer_memory_gb
    if target.trainer_gpus:
        trainer.accelerator.CopyFrom(resource_spec.AcceleratorConfig(type=target.accelerator_type,
                                                                      count=target.trainer_gpus))
    resources[TRAINER] = trainer
    return resources


def build_pipeline(target: KubeflowTarget, dataset: DatasetSpec, hparams: HParams,
                   pipeline_name: str = "cifar10-resnet"):
    """The TFX pipeline for ``target``, with run-time parameters where a user may change values."""
    from tfx.orchestration import data_types

    from cifar_tfx.pipeline.pipeline import create_pipeline

    defaults = default_parameter_values(hparams, target.data_path)

    def parameter(name: str, ptype: type):
        return data_types.RuntimeParameter(name=name, ptype=ptype, default=defaults[name])

    return create_pipeline(
        pipeline_name=pipeline_name, pipeline_root=target.pipeline_root,
        data_path=parameter(PIPELINE_PARAMETERS.data_path, str),
        dataset=dataset, hparams=hparams, serving_dir=target.serving_dir, model_name=target.model_name,
        compare_with_last_blessed=target.target == "vertex",
        epochs=parameter(PIPELINE_PARAMETERS.epochs, float),
        time_budget_minutes=parameter(PIPELINE_PARAMETERS.time_budget_minutes, float),
        min_accuracy=parameter(PIPELINE_PARAMETERS.min_accuracy, float),
        beam_pipeline_args=target.beam_args, resources=node_resources(target),
    )


def kubernetes_platform_spec(target: KubeflowTarget, executor_labels: Mapping[str, str]) -> Optional[dict]:
    """The ``PlatformSpec`` document (as a dict) with PVC mounts and the Trainer's node selector.

    ``executor_labels`` maps task name to its executor label in ``deploymentSpec``.
    ``None`` when there is nothing Kubernetes-specific to say.
    """
    from google.protobuf import json_format
    from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s
    from kfp.pipeline_spec import pipeline_spec_pb2

    configs: Dict[str, Any] = {}

    def config_of(task: str):
        return configs.setdefault(executor_labels[task], k8s.KubernetesExecutorConfig())

    for volume, task in ((target.data_volume, EXAMPLE_GEN), (target.serving_volume, PUSHER)):
        if volume is not None:
            config_of(task).pvc_mount.append(k8s.PvcMount(constant=volume.claim, mount_path=volume.mount_path))
    if target.gpu_node_selector:
        config_of(TRAINER).node_selector.labels.update(dict(target.gpu_node_selector))
    if not configs:
        return None
    platform = pipeline_spec_pb2.PlatformSpec()
    executors = platform.platforms["kubernetes"].deployment_spec.executors
    for label, config in configs.items():
        executors[label].update(json_format.MessageToDict(config))
    return json_format.MessageToDict(platform)


def compile_pipeline(target: KubeflowTarget, dataset: DatasetSpec, hparams: HParams, output_file: str,
                     pipeline_name: str = "cifar10-resnet") -> str:
    """Write the spec for ``target`` to ``output_file`` (YAML: the PipelineSpec, then the PlatformSpec)."""
    import yaml
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    if not output_file.endswith((".yaml", ".yml")):
        raise ValueError(f"output file {output_file!r} must end in .yaml (KFP 2 takes a YAML PipelineSpec)")
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(default_image=target.image,
                                                                use_pipeline_spec_2_1=True),
        output_dir=posixpath.dirname(output_file) or ".", output_filename=posixpath.basename(output_file))
    job = runner.run(build_pipeline(target, dataset, hparams, pipeline_name), write_out=False)
    spec = job["pipelineSpec"]
    spec["defaultPipelineRoot"] = target.pipeline_root
    # TFX puts parameter defaults into the PipelineJob's runtime config, which a YAML spec
    # does not carry: without them in the spec, every submitted run would have to set all four.
    root_parameters = spec["root"]["inputDefinitions"]["parameters"]
    for name, value in default_parameter_values(hparams, target.data_path).items():
        root_parameters[name]["defaultValue"] = value
        root_parameters[name]["isOptional"] = True
    tasks = spec["root"]["dag"]["tasks"]
    tasks[EXAMPLE_GEN]["cachingOptions"] = {}  # enableCache false: see the module docstring
    documents = [spec]
    labels = {name: task["componentRef"]["name"] for name, task in tasks.items()}
    executor_labels = {name: spec["components"][component]["executorLabel"] for name, component in labels.items()
                       if "executorLabel" in spec["components"][component]}
    platform = kubernetes_platform_spec(target, executor_labels) if target.target == "kfp" else None
    if platform:
        documents.append(platform)
    with open(output_file, "w") as out:
        out.write(f"# {pipeline_name}: compiled by cifar-tfx for --target {target.target}; "
                  "submit with `cifar-tfx kubeflow submit`.\n")
        yaml.safe_dump_all(documents, out, sort_keys=True)
    return output_file


def parse_node_selector(pairs: Sequence[str]) -> Tuple[Tuple[str, str], ...]:
    """``["key=value", ...]`` as pairs; a pair without ``=`` is an error."""
    parsed = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"node selector {pair!r} must be KEY=VALUE")
        parsed.append((key, value))
    return tuple(parsed)
