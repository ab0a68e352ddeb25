"""Compile the pipeline into a Kubeflow Pipelines 2 ``PipelineSpec`` that a cluster accepts and runs.

Two targets, one pipeline (``create_pipeline``):

* ``kfp``, the open-source KFP 2 backend. Its API server takes only schema 2.1.0
  specs, its driver turns an accelerator type straight into a Kubernetes resource
  name (so the Trainer asks for ``nvidia.com/gpu``), and it cannot run TFX
  ``Resolver`` nodes (so the gate compares with the version the serving folder
  serves). Volumes and node selectors go into the spec's second YAML document, a ``PlatformSpec`` whose
  Kubernetes executor configs are built with the ``kfp-kubernetes`` package's protos.
* ``vertex``, Vertex AI Pipelines: the same spec with Vertex's accelerator names
  (``NVIDIA_TESLA_T4``) and the last-blessed-model Resolver as the gate's baseline.

Every task's container runs ``task_entrypoint`` (TFX's entrypoint, with ``minio://`` and
``s3://`` artifacts at the paths where the open-source launcher moves them), so the
pipeline root may be the default install's MinIO bucket.

Both write ``defaultPipelineRoot`` and the pipeline parameters a user sets when
submitting a run: ``data_path``, ``data_fingerprint`` and every ``HParams`` field declared
a run parameter (``run_parameter_fields``: length, depth, width, batch size, learning rate,
weight decay, cutout and the gate's bounds), each defaulting to the compiled profile's
value. ExampleGen and the Pusher are not cached as compiled (``UNCACHED_TASKS``).

Every container needs ``TF_USE_LEGACY_KERAS=1`` (tensorflow-transform 1.16 requires
Keras 2): the image built from ``kubeflow/Dockerfile`` sets it.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from cifar_tfx import storage
from cifar_tfx.pipeline.component_ids import (COMPONENT_IDS, EVALUATOR, EXAMPLE_GEN, PUSHER, STATISTICS_GEN,
                                             TRAINER, TRANSFORM)
from cifar_tfx.data.datasets import DEFAULT_DATASET, DatasetSpec
from cifar_tfx.kubeflow.task_entrypoint import TFX_ENTRYPOINT
from cifar_tfx.serving.model_config import check_base_path, check_model_name
from cifar_tfx.trainer.hparams import HParams, run_parameter_fields, run_parameter_value

TARGETS = ("kfp", "vertex")
DEFAULT_GPU_TYPE = {"kfp": "nvidia.com/gpu", "vertex": "NVIDIA_TESLA_T4"}
# Components that read all the data (the Beam ones); they get `task_cpus` and `task_memory_gb`.
HEAVY_COMPONENTS = (EXAMPLE_GEN, STATISTICS_GEN, TRANSFORM, EVALUATOR)
# Retries wait 30 s, then twice as long each time, at most an hour (PipelineTaskSpec.RetryPolicy).
RETRY_BACKOFF = {"backoffDuration": "30s", "backoffFactor": 2.0, "backoffMaxDuration": "3600s"}
TASK_ENTRYPOINT = "cifar_tfx.kubeflow.task_entrypoint"
# Never taken from KFP's cache as compiled. ExampleGen: the cache knows inputs by identity, not content, so
# only a fresh ingestion notices new data at the same path, unless the run carries a data fingerprint
# (`submit` then turns its cache on). The Pusher: its effect is outside the artifact store (the serving
# folder), and a cached "pushed" would report a push that did not happen now.
UNCACHED_TASKS = (EXAMPLE_GEN, PUSHER)
# kfp only: the Evaluator, whose baseline is the version served when it runs, which the cache key cannot see.
UNCACHED_TASKS_KFP = UNCACHED_TASKS + (EVALUATOR,)


@dataclasses.dataclass(frozen=True)
class Toleration:
    """A Kubernetes toleration for the Trainer's pod (``Toleration`` of kubernetes_executor_config.proto)."""

    key: str
    operator: str = "Exists"      # Exists or Equal
    value: str = ""
    effect: str = "NoSchedule"    # NoSchedule, PreferNoSchedule or NoExecute

    def __post_init__(self) -> None:
        if self.operator not in ("Exists", "Equal") or self.effect not in ("NoSchedule", "PreferNoSchedule",
                                                                            "NoExecute", ""):
            raise ValueError(f"toleration {self}: operator Exists|Equal, effect NoSchedule|PreferNoSchedule|NoExecute")
        if self.operator == "Exists" and self.value:
            raise ValueError(f"toleration {self.key}: operator Exists takes no value")

    def as_json(self) -> Dict[str, str]:
        return {name: value for name, value in dataclasses.asdict(self).items() if value}


# GPU node pools are usually tainted nvidia.com/gpu (GKE, EKS and AKS GPU pools).
DEFAULT_GPU_TOLERATIONS = (Toleration("nvidia.com/gpu"),)


DATA_PATH_PARAMETER = "data_path"
# Set by `kubeflow submit` for each run: text that changes when the data at data_path changes. ExampleGen's
# cache key holds it (and ExampleGen is cached only when a run has one): see submit.with_data_fingerprint.
FINGERPRINT_PARAMETER = "data_fingerprint"
K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")  # a DNS subdomain: PVC and Secret names
# The driver names a pod's volume after the PVC or Secret it mounts (backend/src/v2/driver/driver.go at 2.3.0
# and 2.5.0, k8s.go at 2.17.0), and a pod's volume names are DNS-1123 labels, unique in the pod (the API
# server's pod validation): so a mounted PVC or Secret name has no '.' and at most 63 characters.
POD_VOLUME_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# Volumes the Argo compiler gives every task pod (argocompiler/container.go, 2.0.0 to 2.17.0; the workspace
# volume: component/constants.go at 2.17.0).
BACKEND_VOLUMES = ("kfp-launcher", "gcs-scratch", "s3-scratch", "minio-scratch", "dot-local-scratch",
                   "dot-cache-scratch", "dot-config-scratch", "kfp-workspace")
# A node label (the Trainer's node selector): an optional DNS-subdomain prefix and '/', a name of at most 63
# characters; a value of at most 63, possibly empty (apimachinery's IsQualifiedName and IsValidLabelValue).
_LABEL_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_KEY = re.compile(rf"(?:[a-z0-9](?:[-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}")
LABEL_VALUE = re.compile(rf"(?:{_LABEL_NAME})?")
MAX_GPUS = 16  # the most any cloud's GPU node has (GKE a2-megagpu-16g, AWS p4de has 8)
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A container image reference as the kubelet parses it (grammar in distribution/reference's reference.go:
# [domain '/'] path [':' tag] ['@' digest]); a pod with anything else fails with InvalidImageName.
_DOMAIN_PART = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PATH_PART = r"[a-z0-9]+(?:(?:[_.]|__|-+)[a-z0-9]+)*"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_REFERENCE = re.compile(
    rf"(?P<name>(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?/)?{_PATH_PART}(?:/{_PATH_PART})*)"
    rf"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@{_DIGEST})?")
IMAGE_NAME_MAX = 255  # the name, without tag or digest (NameTotalLengthMax in reference.go)
# Set by the image (kubeflow/Dockerfile) and needed as they are: TensorFlow Transform needs Keras 2, and the
# project's commands are found on the image's PATH.
IMAGE_ENV = ("TF_USE_LEGACY_KERAS", "PATH")


@dataclasses.dataclass(frozen=True)
class VolumeMount:
    """A PersistentVolumeClaim mounted into one or more tasks (open-source KFP only)."""

    claim: str        # PVC name in the run's namespace
    mount_path: str   # where the containers see it

    def __post_init__(self) -> None:
        check_pod_volume_name(self.claim, "PVC")
        if not self.mount_path.startswith("/"):
            raise ValueError(f"mount path {self.mount_path!r} must be absolute")

    def holds(self, path: str) -> bool:
        mount = self.mount_path.rstrip("/")
        return path.rstrip("/") == mount or path.startswith(mount + "/")


# Folders the launcher or the image own inside every pod (argocompiler/container.go, kubeflow/Dockerfile).
RESERVED_MOUNTS = ("/minio", "/s3", "/gcs", "/tmp", "/kfp-launcher", "/opt/venv")


@dataclasses.dataclass(frozen=True)
class SecretVolume:
    """A Kubernetes Secret mounted as files into every task (``SecretAsVolume``), e.g. a cloud key."""

    secret: str
    mount_path: str

    def __post_init__(self) -> None:
        check_pod_volume_name(self.secret, "Secret")
        if not self.mount_path.startswith("/") or any(self.mount_path.rstrip("/") == r or
                                                      self.mount_path.startswith(r + "/") for r in RESERVED_MOUNTS):
            raise ValueError(f"secret mount path {self.mount_path!r} must be absolute and outside "
                             f"{', '.join(RESERVED_MOUNTS)}")


@dataclasses.dataclass(frozen=True)
class SecretEnv:
    """An environment variable of every task set from one key of a Secret (``SecretAsEnv``)."""

    variable: str
    secret: str
    key: str

    def __post_init__(self) -> None:
        if not ENV_NAME.fullmatch(self.variable):
            raise ValueError(f"{self.variable!r} is not an environment variable name")
        if not K8S_NAME.fullmatch(self.secret) or not self.key:
            raise ValueError(f"{self.secret}:{self.key} must be SECRET:KEY (a Kubernetes Secret name and one of "
                             "its keys)")


@dataclasses.dataclass(frozen=True)
class KubeflowTarget:
    """Where a run reads and writes, and what each node gets."""

    image: str                       # container image built from kubeflow/Dockerfile
    pipeline_root: str               # gs://, minio:// or s3:// bucket/path (ROOT_SCHEMES)
    data_path: str                   # default of the data_path parameter, as the containers see it
    serving_dir: str                 # TF Serving base folder as the Pusher sees it (gs:// or a mounted volume)
    target: str = "kfp"              # "kfp" (open source) or "vertex"
    model_name: str = DEFAULT_DATASET
    trainer_gpus: int = 1
    gpu_type: str = ""               # "" = the target's default (DEFAULT_GPU_TYPE)
    allow_cpu_fallback: bool = False  # True: a Trainer that sees no GPU trains on the CPU instead of failing
    # Requests (kfp) or limits (Vertex). The Trainer's fit an 8-vCPU / 30 GB GPU node (n1-standard-8 with
    # a T4 allocates about 7.9 CPUs and 26 GB to pods, less what the node's daemons request).
    trainer_cpus: float = 6.0
    trainer_memory_gb: float = 20.0
    task_cpus: float = 2.0           # each HEAVY_COMPONENTS task; its Beam DirectRunner gets as many workers
    task_memory_gb: float = 8.0
    light_cpus: float = 0.5          # every other task (schema, validation, the Pusher)
    light_memory_gb: float = 2.0
    retries: int = 0                 # retries of a failed task (a pre-empted node, a lost connection)
    gpu_tolerations: Tuple[Toleration, ...] = DEFAULT_GPU_TOLERATIONS  # kfp: the Trainer's, when it has GPUs
    data_volume: Optional[VolumeMount] = None      # kfp: PVC holding the data, mounted into ExampleGen
    serving_volume: Optional[VolumeMount] = None   # kfp: PVC holding serving_dir, mounted into the Pusher
    gpu_node_selector: Tuple[Tuple[str, str], ...] = ()  # kfp: node labels the Trainer pod must match
    secret_volumes: Tuple[SecretVolume, ...] = ()  # kfp: Secrets mounted into every task
    secret_env: Tuple[SecretEnv, ...] = ()         # kfp: environment variables of every task from Secrets
    env: Tuple[Tuple[str, str], ...] = ()          # plain environment variables of every task's container
    serving_base_path: str = ""      # serving_dir as the TF Serving pod sees it ("" = the Pusher's path)
    beam_args: Tuple[str, ...] = ()  # more Beam options for HEAVY_COMPONENTS, after the DirectRunner's

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        reference = IMAGE_REFERENCE.fullmatch(self.image)
        if not reference or len(reference["name"]) > IMAGE_NAME_MAX:
            raise ValueError(f"image {self.image!r} is not a container image reference "
                             "([registry/]path[:tag][@sha256:digest], the path in lower case)")
        check_model_name(self.model_name)
        check_pipeline_root(self.pipeline_root, self.target)
        if not 0 <= self.trainer_gpus <= MAX_GPUS:
            raise ValueError(f"--gpus must be within [0, {MAX_GPUS}] (GPUs of one node), got {self.trainer_gpus}")
        for key, value in self.gpu_node_selector:
            if not LABEL_KEY.fullmatch(key) or len(key.rpartition("/")[0]) > 253 or not LABEL_VALUE.fullmatch(value):
                raise ValueError(f"--gpu-node-selector {key}={value}: not a Kubernetes node label (a name of "
                                 "letters, digits, '-', '_', '.', at most 63, with an optional 'prefix/'; "
                                 "a value likewise or empty)")
        for name in ("trainer_cpus", "trainer_memory_gb", "task_cpus", "task_memory_gb", "light_cpus",
                     "light_memory_gb"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value <= 1024):
                raise ValueError(f"{name} must be within (0, 1024], got {value}")
        if not 0 <= self.retries <= 10:
            raise ValueError(f"retries must be within [0, 10], got {self.retries}")
        if self.target == "vertex" and (self.data_volume or self.serving_volume or self.gpu_node_selector
                                        or self.secret_volumes or self.secret_env):
            raise ValueError("volumes, secrets and node selectors are Kubernetes settings: only for --target kfp")
        self._check_secrets()
        if self.serving_base_path:
            check_base_path(self.serving_base_path)
        if self.gpu_type:
            check_gpu_type(self.gpu_type, self.target)
        for path, volume, what in ((self.data_path, self.data_volume, "--data"),
                                   (self.serving_dir, self.serving_volume, "--serving-dir")):
            if volume is not None and not volume.holds(path):  # a volume mounted for a path it does not hold
                raise ValueError(f"{what} {path!r} is not under the volume mounted at {volume.mount_path!r}")
            check_task_path(path, volume, what, self.target)

    def _check_secrets(self) -> None:
        """One mount per Secret (the backend names the pod's volume after it), none over another mount,
        one Secret per variable."""
        secrets = [volume.secret for volume in self.secret_volumes]
        if len(set(secrets)) < len(secrets):
            raise ValueError(f"a Secret is mounted twice: {sorted(secrets)}")
        claims = {volume.claim: flag for volume, flag in ((self.data_volume, "--data-pvc"),
                                                         (self.serving_volume, "--serving-pvc")) if volume}
        for secret in secrets:
            if secret in claims:  # every task mounts the Secrets, so some task would have two volumes of this name
                raise ValueError(f"--secret {secret} and {claims[secret]} {secret}: the driver names a pod's volume "
                                 "after the Secret or PVC, and a pod cannot have two volumes of one name: rename one")
        taken = [volume.mount_path for volume in (self.data_volume, self.serving_volume) if volume]
        for volume in self.secret_volumes:
            if any(volume.mount_path.rstrip("/") == path.rstrip("/") for path in taken):
                raise ValueError(f"secret {volume.secret} would be mounted over the volume at {volume.mount_path}")
            taken.append(volume.mount_path)
        variables = [env.variable for env in self.secret_env] + [name for name, _ in self.env]
        for name in variables:
            if not ENV_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an environment variable name")
        if len(set(variables)) < len(variables):
            raise ValueError(f"an environment variable is set twice: {sorted(variables)}")
        overridden = sorted(set(variables) & set(IMAGE_ENV))
        if overridden:
            raise ValueError(f"{', '.join(overridden)}: set by the image (kubeflow/Dockerfile), and the tasks need "
                             "them as they are")

    @property
    def accelerator_type(self) -> str:
        return self.gpu_type or DEFAULT_GPU_TYPE[self.target]

    @property
    def beam_pipeline_args(self) -> Tuple[str, ...]:
        """The DirectRunner in each heavy task, one worker process per requested CPU (not per node core,
        which ``--direct_num_workers=0`` would start), then ``beam_args``."""
        workers = max(1, int(self.task_cpus))
        direct = ("--direct_running_mode=multi_processing", f"--direct_num_workers={workers}") if workers > 1 \
            else ("--direct_num_workers=1",)
        return direct + tuple(self.beam_args)


# Pipeline-root schemes a target's tasks can write. Vertex AI: Cloud Storage only. Open-source KFP: Cloud
# Storage, which TensorFlow opens itself, and MinIO or S3, which the KFP launcher moves to and from local
# paths for the task (task_entrypoint.py).
ROOT_SCHEMES = {"kfp": ("gs://", "minio://", "s3://"), "vertex": ("gs://",)}


# A Kubernetes extended resource name, which the open-source driver requests as it is (nvidia.com/gpu).
RESOURCE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")


# Where a task opens a path that is not an artifact: the flag that names its volume.
VOLUME_FLAGS = {"--data": "--data-pvc", "--serving-dir": "--serving-pvc", "data_path": "--data-pvc"}


def check_task_path(path: str, volume: Optional[VolumeMount], what: str, target: str) -> None:
    """Refuse a data or serving path a task could not open: a scheme TensorFlow cannot open, a local path with
    no volume that holds it (kfp), or one outside the volume's mount."""
    flag = VOLUME_FLAGS.get(what, "the volume")
    if storage.is_remote(path) and not path.startswith("gs://"):
        raise ValueError(f"{what} {path!r}: TensorFlow opens only gs:// URIs (the KFP launcher moves "
                         f"artifacts, not these folders): use gs:// or a path on a volume ({flag})")
    if target == "kfp" and not storage.is_remote(path) and volume is None:
        raise ValueError(f"{what} {path!r} is a local path: give the PVC that holds it ({flag}) or use a gs:// URI")
    if volume is not None and not storage.is_remote(path) and not volume.holds(path):
        raise ValueError(f"{what} {path!r} is not under the volume mounted at {volume.mount_path!r}")


def check_pod_volume_name(name: str, kind: str) -> None:
    """Refuse a PVC or Secret name the driver cannot use as the pod's volume name (see POD_VOLUME_NAME)."""
    if not POD_VOLUME_NAME.fullmatch(name):
        raise ValueError(f"{name!r} cannot name a {kind} mounted into a task: the driver names the pod's volume "
                         "after it, which must be a DNS-1123 label (lower-case letters, digits and '-', at most 63)")
    if name in BACKEND_VOLUMES:
        raise ValueError(f"{name!r} cannot name a {kind} mounted into a task: the backend gives every task pod a "
                         f"volume of that name ({', '.join(BACKEND_VOLUMES)})")


def check_gpu_type(gpu_type: str, target: str) -> None:
    """kfp: a Kubernetes resource name; vertex: a name of Vertex AI's ``AcceleratorType`` enum."""
    if target == "kfp":
        if not RESOURCE_NAME.fullmatch(gpu_type):
            raise ValueError(f"--gpu-type {gpu_type!r}: --target kfp requests it as a Kubernetes resource, "
                             "e.g. nvidia.com/gpu or amd.com/gpu (Vertex's NVIDIA_TESLA_T4 names are for "
                             "--target vertex)")
        return
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # google-api-core's notices about Python versions
        from google.cloud.aiplatform_v1.types.accelerator_type import AcceleratorType
    names = sorted(m.name for m in AcceleratorType if m.name.startswith("NVIDIA_"))
    if gpu_type not in names:
        raise ValueError(f"--gpu-type {gpu_type!r}: --target vertex takes one of {', '.join(names)}")


def check_pipeline_root(pipeline_root: str, target: str) -> None:
    """Refuse a pipeline root no task of ``target`` could write, with the schemes it can."""
    schemes = ROOT_SCHEMES[target]
    bucket = next((pipeline_root[len(s):] for s in schemes if pipeline_root.startswith(s)), None)
    if bucket is None:
        raise ValueError(f"pipeline root {pipeline_root!r}: every task reads and writes artifacts there, so "
                         f"--target {target} needs {' or '.join(s + 'bucket/path' for s in schemes)}")
    if not bucket.split("/", 1)[0]:
        raise ValueError(f"pipeline root {pipeline_root!r} names no bucket")


def default_parameter_values(hparams: HParams, data_path: str) -> Dict[str, Any]:
    """The pipeline parameters and their defaults: the data path and the compiled hparams' run parameters
    (an unset depth, epochs or budget as 0: "the compiled value")."""
    defaults: Dict[str, Any] = {DATA_PATH_PARAMETER: data_path, FINGERPRINT_PARAMETER: ""}
    for name in run_parameter_fields():
        defaults[name] = run_parameter_value(hparams, name)
    if hparams.time_budget_minutes is not None:
        defaults["epochs"] = 0.0  # counted in time: a budget wins anyway
    return defaults


def node_resources(target: KubeflowTarget, component_ids: Sequence[str]) -> Dict[str, Any]:
    """``ResourceSpec`` per component id: every task asks for CPU and memory, GPUs go to the Trainer alone.

    Kubernetes schedules on requests (kfp); Vertex AI picks a machine type from the limits.
    """
    from kfp.pipeline_spec import pipeline_spec_pb2

    resource_spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec

    def sized(cpus: float, memory_gb: float):
        if target.target == "kfp":
            return resource_spec(cpu_request=cpus, memory_request=memory_gb)
        return resource_spec(cpu_limit=cpus, memory_limit=memory_gb)

    resources = {name: sized(target.light_cpus, target.light_memory_gb) for name in component_ids}
    resources.update({name: sized(target.task_cpus, target.task_memory_gb) for name in HEAVY_COMPONENTS})
    trainer = sized(target.trainer_cpus, target.trainer_memory_gb)
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

    parameters = {name: data_types.RuntimeParameter(name=name, ptype=type(default), default=default)
                  for name, default in default_parameter_values(hparams, target.data_path).items()}
    return create_pipeline(
        pipeline_name=pipeline_name, pipeline_root=target.pipeline_root,
        data_path=parameters.pop(DATA_PATH_PARAMETER), data_fingerprint=parameters.pop(FINGERPRINT_PARAMETER),
        dataset=dataset, hparams=hparams, serving_dir=target.serving_dir, model_name=target.model_name,
        compare_with_last_blessed=target.target == "vertex", run_values=parameters,
        trainer_required_gpus=0 if target.allow_cpu_fallback else target.trainer_gpus,
        server_base_path=target.serving_base_path,
        beam_pipeline_args=target.beam_pipeline_args, resources=node_resources(target, COMPONENT_IDS),
    )


def kubernetes_platform_spec(target: KubeflowTarget, executor_labels: Mapping[str, str]) -> Optional[dict]:
    """The ``PlatformSpec`` document (as a dict): PVC mounts, Secrets in every task, the Trainer's node
    selector and tolerations.

    ``executor_labels`` maps task name to its executor label in ``deploymentSpec``.
    ``None`` when there is nothing Kubernetes-specific to say.
    """
    from google.protobuf import json_format
    from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s
    from kfp.pipeline_spec import pipeline_spec_pb2

    configs: Dict[str, Any] = {}

    def config_of(task: str):
        return configs.setdefault(executor_labels[task], k8s.KubernetesExecutorConfig())

    # The Evaluator reads the serving folder too: on kfp its baseline is the version served there.
    for volume, tasks in ((target.data_volume, (EXAMPLE_GEN,)), (target.serving_volume, (EVALUATOR, PUSHER))):
        for task in tasks if volume is not None else ():
            config_of(task).pvc_mount.append(k8s.PvcMount(constant=volume.claim, mount_path=volume.mount_path))
    if target.gpu_node_selector:
        config_of(TRAINER).node_selector.labels.update(dict(target.gpu_node_selector))
    for task in executor_labels if (target.secret_volumes or target.secret_env) else ():
        config = config_of(task)
        for volume in target.secret_volumes:
            config.secret_as_volume.append(k8s.SecretAsVolume(secret_name=volume.secret, mount_path=volume.mount_path))
        for env in target.secret_env:
            config.secret_as_env.append(k8s.SecretAsEnv(secret_name=env.secret, key_to_env=[
                k8s.SecretAsEnv.SecretKeyToEnvMap(secret_key=env.key, env_var=env.variable)]))
    for toleration in target.gpu_tolerations if target.trainer_gpus else ():
        # Field 12 of KubernetesExecutorConfig (kubernetes_platform/proto/kubernetes_executor_config.proto in
        # kubeflow/pipelines; the backend applies it since 2.1.0).
        config_of(TRAINER).tolerations.append(k8s.Toleration(**toleration.as_json()))
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
    for executor in spec["deploymentSpec"]["executors"].values():
        command = executor.get("container", {}).get("command", [])
        if command[-1:] == [TFX_ENTRYPOINT]:
            command[-1] = TASK_ENTRYPOINT  # TFX's, with minio:// and s3:// artifacts at the launcher's paths
        if target.env and "container" in executor:
            executor["container"]["env"] = [{"name": name, "value": value} for name, value in target.env]
    tasks = spec["root"]["dag"]["tasks"]
    for name in UNCACHED_TASKS_KFP if target.target == "kfp" else UNCACHED_TASKS:
        tasks[name]["cachingOptions"] = {}  # enableCache false: see UNCACHED_TASKS
    if target.retries:
        for task in tasks.values():
            task["retryPolicy"] = {"maxRetryCount": target.retries, **RETRY_BACKOFF}
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


def parse_pairs(pairs: Sequence[str], what: str) -> Tuple[Tuple[str, str], ...]:
    """``["key=value", ...]`` as pairs (node labels, environment variables); a pair without ``=`` is an error."""
    parsed = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} {pair!r} must be KEY=VALUE")
        parsed.append((key, value))
    return tuple(parsed)


def parse_secret_volume(text: str) -> SecretVolume:
    """``NAME[:MOUNT]``; the mount defaults to ``/var/secrets/NAME``."""
    name, _, mount = text.partition(":")
    return SecretVolume(secret=name, mount_path=mount or f"/var/secrets/{name}")


def parse_secret_env(text: str) -> SecretEnv:
    """``VARIABLE=SECRET:KEY``."""
    variable, sep, source = text.partition("=")
    secret, colon, key = source.partition(":")
    if not sep or not colon:
        raise ValueError(f"--secret-env {text!r} must be VARIABLE=SECRET:KEY")
    return SecretEnv(variable=variable, secret=secret, key=key)


def parse_tolerations(values: Sequence[str]) -> Tuple[Toleration, ...]:
    """``["KEY[=VALUE][:EFFECT]", ...]`` as tolerations (with a value: operator Equal, else Exists)."""
    parsed = []
    for text in values:
        pair, _, effect = text.partition(":")
        key, sep, value = pair.partition("=")
        if not key:
            raise ValueError(f"toleration {text!r} must be KEY[=VALUE][:EFFECT]")
        parsed.append(Toleration(key=key, operator="Equal" if sep else "Exists", value=value,
                                 effect=effect or "NoSchedule"))
    return tuple(parsed)
