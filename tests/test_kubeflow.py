"""The compiled KFP-2 specs, checked against what the KFP API server, its driver and Vertex accept.

Rules checked here, read from kubeflow/pipelines' backend: the API server parses the
first YAML document strictly into ``PipelineSpec`` and takes only schema 2.1.0, a
lower-case DNS-like pipeline name and a root; it parses a second document into
``PlatformSpec``; a run without a value for a root parameter that has no default is
refused; the driver resolves only ``runtimeValue.constant`` parameters and turns an
accelerator type into the Kubernetes resource name verbatim.
"""

import json
import re

import pytest
import yaml

pytest.importorskip("tfx")

from google.protobuf import json_format  # noqa: E402
from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s  # noqa: E402
from kfp.pipeline_spec import pipeline_spec_pb2  # noqa: E402

from cifar_tfx.data.datasets import CIFAR10  # noqa: E402
from cifar_tfx.kubeflow.compiler import (  # noqa: E402
    TASK_ENTRYPOINT, KubeflowTarget, SecretEnv, SecretVolume, VolumeMount, compile_pipeline,
    parse_secret_env, parse_secret_volume)
from cifar_tfx.trainer.hparams import FULL, HParams, with_overrides  # noqa: E402

COMPONENTS = {"CifarExampleGen", "StatisticsGen", "SchemaGen", "PinSchema", "ExampleValidator", "AnomalyGate",
              "Transform", "Trainer", "Evaluator", "Pusher"}
BEAM_COMPONENTS = {"CifarExampleGen", "StatisticsGen", "Transform", "Evaluator"}


def _compile(tmp_path_factory, **fields):
    out = tmp_path_factory.mktemp("kfp") / "pipeline.yaml"
    fields.setdefault("pipeline_root", "gs://bucket/root")
    target = KubeflowTarget(image="registry.example/cifar-tfx:1", **fields)
    compile_pipeline(target, CIFAR10, FULL, str(out))
    documents = [d for d in yaml.safe_load_all(out.read_text()) if d]
    return documents


@pytest.fixture(scope="module")
def kfp_docs(tmp_path_factory):
    return _compile(tmp_path_factory, target="kfp", data_path="/mnt/data/cifar-10-python.tar.gz",
                    serving_dir="/srv/models", trainer_gpus=2,
                    data_volume=VolumeMount("cifar-data", "/mnt/data"),
                    serving_volume=VolumeMount("tf-serving", "/srv/models"),
                    gpu_node_selector=(("cloud.google.com/gke-accelerator", "nvidia-tesla-t4"),))


@pytest.fixture(scope="module")
def vertex_docs(tmp_path_factory):
    return _compile(tmp_path_factory, target="vertex", data_path="gs://bucket/data/cifar-10-python.tar.gz",
                    serving_dir="gs://bucket/models", trainer_gpus=1)


def _strict_spec(document) -> pipeline_spec_pb2.PipelineSpec:
    """Parse as the API server does (protojson: unknown fields are errors)."""
    return json_format.ParseDict(document, pipeline_spec_pb2.PipelineSpec())


@pytest.mark.parametrize("docs_name", ["kfp_docs", "vertex_docs"])
def test_spec_is_what_the_api_server_accepts(docs_name, request):
    docs = request.getfixturevalue(docs_name)
    spec = _strict_spec(docs[0])
    assert spec.schema_version == "2.1.0"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", spec.pipeline_info.name)
    assert spec.default_pipeline_root == "gs://bucket/root"
    assert spec.root.dag.tasks


@pytest.mark.parametrize("docs_name", ["kfp_docs", "vertex_docs"])
def test_parameters_are_constants_or_root_inputs_with_defaults(docs_name, request):
    spec = _strict_spec(request.getfixturevalue(docs_name)[0])
    root_inputs = spec.root.input_definitions.parameters
    kinds = {name: pipeline_spec_pb2.ParameterType.ParameterTypeEnum.Name(p.parameter_type)
             for name, p in root_inputs.items()}
    # the network and the recipe: true / false fields as on / off strings (a TFX RuntimeParameter is an
    # int, a float or a string)
    recipe = {"architecture": "STRING", "whitened_stem": "STRING", "zero_init_residual": "STRING",
              "momentum": "NUMBER_DOUBLE", "nesterov": "STRING", "lr_schedule": "STRING",
              "warmup_fraction": "NUMBER_DOUBLE", "label_smoothing": "NUMBER_DOUBLE", "crop_padding": "NUMBER_INTEGER",
              "flip": "STRING", "small_crop_fraction": "NUMBER_DOUBLE", "small_crop_size": "NUMBER_INTEGER",
              "test_time_flip": "STRING", "test_time_shift": "NUMBER_INTEGER"}
    assert kinds == {"data_path": "STRING", "data_fingerprint": "STRING", "depth": "NUMBER_INTEGER", "width": "NUMBER_INTEGER",
                     "batch_size": "NUMBER_INTEGER",
                     "cutout_size": "NUMBER_INTEGER", "learning_rate": "NUMBER_DOUBLE", "weight_decay": "NUMBER_DOUBLE",
                     "epochs": "NUMBER_DOUBLE", "time_budget_minutes": "NUMBER_DOUBLE",
                     "min_accuracy": "NUMBER_DOUBLE", "max_regression": "NUMBER_DOUBLE",
                     "min_class_accuracy": "NUMBER_DOUBLE", **recipe}
    defaults = {name: json_format.MessageToDict(p.default_value) for name, p in root_inputs.items()}
    assert defaults["epochs"] == FULL.epochs and defaults["time_budget_minutes"] == 0
    assert (defaults["depth"], defaults["width"], defaults["batch_size"], defaults["cutout_size"]) == (56, 1, 128, 16)
    assert (defaults["learning_rate"], defaults["weight_decay"]) == (0.1, 1e-4)
    assert (defaults["architecture"], defaults["flip"], defaults["nesterov"], defaults["lr_schedule"]) == \
        ("resnet", "on", "off", "step")
    assert (defaults["min_accuracy"], defaults["max_regression"]) == (FULL.min_accuracy, FULL.max_regression)
    used = set()
    for name, task in spec.root.dag.tasks.items():
        for key, parameter in task.inputs.parameters.items():
            kind = parameter.WhichOneof("kind")
            if kind == "runtime_value":
                # The open-source driver resolves `constant` only (schema 2.0's constantValue is dropped).
                assert parameter.runtime_value.WhichOneof("value") == "constant", (name, key)
            else:
                assert kind == "component_input_parameter", (name, key, kind)
                used.add((name, parameter.component_input_parameter))
    training = {"depth", "width", "batch_size", "cutout_size", "learning_rate", "weight_decay", "epochs",
                "time_budget_minutes"} | set(recipe)
    gate = {"min_accuracy", "max_regression", "min_class_accuracy"}
    assert used == {("CifarExampleGen", "data_path"), ("CifarExampleGen", "data_fingerprint")} | \
        {("Trainer", n) for n in training} | \
        {("Evaluator", n) for n in gate}


def _deployment(spec) -> pipeline_spec_pb2.PipelineDeploymentConfig:
    """The deployment section, parsed strictly as the driver does."""
    return json_format.ParseDict(json_format.MessageToDict(spec.deployment_spec),
                                 pipeline_spec_pb2.PipelineDeploymentConfig())


def _resources(spec):
    executors = _deployment(spec).executors
    labels = {name: spec.components[task.component_ref.name].executor_label
              for name, task in spec.root.dag.tasks.items()}
    result = {}
    for name, label in labels.items():
        executor = json_format.MessageToDict(executors[label])
        result[name] = executor.get("container", {})
    return result


def test_kfp_trainer_alone_asks_for_kubernetes_gpus_and_heavy_tasks_request_resources(kfp_docs):
    containers = _resources(_strict_spec(kfp_docs[0]))
    with_gpu = {name: c["resources"]["accelerator"] for name, c in containers.items()
                if "accelerator" in c.get("resources", {})}
    assert with_gpu == {"Trainer": {"type": "nvidia.com/gpu", "count": "2"}}
    requests = {name: (c["resources"]["cpuRequest"], c["resources"]["memoryRequest"]) for name, c in containers.items()}
    assert set(requests) == COMPONENTS, "every task asks for what it needs: a pod without requests can starve"
    assert requests["Trainer"] == (6.0, 20.0), "fits an 8-vCPU GPU node (about 7.9 allocatable CPUs, 26 GB)"
    assert {requests[name] for name in BEAM_COMPONENTS} == {(2.0, 8.0)}
    assert {requests[name] for name in COMPONENTS - BEAM_COMPONENTS - {"Trainer"}} == {(0.5, 2.0)}
    assert all("cpuLimit" not in c["resources"] for c in containers.values()), "kfp schedules on requests"
    assert all(c["image"] == "registry.example/cifar-tfx:1" for c in containers.values())


def test_vertex_uses_its_accelerator_names_and_the_baseline_resolver(vertex_docs):
    spec = _strict_spec(vertex_docs[0])
    containers = _resources(spec)
    with_gpu = {name: c["resources"]["accelerator"] for name, c in containers.items()
                if "accelerator" in c.get("resources", {})}
    assert with_gpu == {"Trainer": {"type": "NVIDIA_TESLA_T4", "count": "1"}}
    for name in BEAM_COMPONENTS | {"Trainer"}:  # Vertex sizes machines from limits
        resources = containers[name]["resources"]
        assert resources["cpuLimit"] > 0 and resources["memoryLimit"] > 0, name
    resolvers = [name for name, executor in _deployment(spec).executors.items()
                 if "resolver" in json.dumps(json_format.MessageToDict(executor)).lower()]
    # TFX compiles its one LatestBlessedModel Resolver node into two KFP resolver steps.
    assert resolvers and {name.split("-")[0] for name in resolvers} == {"last_blessed_model"}
    assert len(vertex_docs) == 1, "no Kubernetes platform document for Vertex AI"


def test_kfp_has_no_resolver_and_every_task_is_a_container(kfp_docs):
    spec = _strict_spec(kfp_docs[0])
    assert set(spec.root.dag.tasks) == COMPONENTS
    for label, executor in _deployment(spec).executors.items():
        assert executor.WhichOneof("spec") == "container", label
        assert list(executor.container.command) == ["python", "-m", TASK_ENTRYPOINT], label  # minio:// roots
    assert "resolver" not in json.dumps(kfp_docs[0]).lower()


def test_kfp_platform_section_mounts_the_volumes_and_selects_gpu_nodes(kfp_docs):
    assert len(kfp_docs) == 2
    platform = json_format.ParseDict(kfp_docs[1], pipeline_spec_pb2.PlatformSpec())  # a Struct per executor
    assert set(platform.platforms["kubernetes"].deployment_spec.executors) == {
        "CifarExampleGen_executor", "Evaluator_executor", "Pusher_executor", "Trainer_executor"}
    executors = json.loads(json.dumps(kfp_docs[1]))["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    configs = {label: json_format.ParseDict(struct, k8s.KubernetesExecutorConfig()) for label, struct in executors.items()}
    # Tolerations: field 12 of KubernetesExecutorConfig, message Toleration {key, operator, value, effect,
    # toleration_seconds} (kubeflow/pipelines kubernetes_platform/proto/kubernetes_executor_config.proto).
    assert {label: [json_format.MessageToDict(t) for t in config.tolerations]
            for label, config in configs.items() if config.tolerations} == {
        "Trainer_executor": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}
    assert set(configs) == {"CifarExampleGen_executor", "Evaluator_executor", "Pusher_executor", "Trainer_executor"}
    assert [(m.constant, m.mount_path) for m in configs["CifarExampleGen_executor"].pvc_mount] == [
        ("cifar-data", "/mnt/data")]
    for label in ("Evaluator_executor", "Pusher_executor"):  # the Evaluator's baseline is served there
        assert [(m.constant, m.mount_path) for m in configs[label].pvc_mount] == [("tf-serving", "/srv/models")]
    assert dict(configs["Trainer_executor"].node_selector.labels) == {
        "cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    spec_labels = set(_deployment(_strict_spec(kfp_docs[0])).executors)
    assert set(configs) <= spec_labels


def test_beam_arguments_only_on_beam_components_and_ingestion_and_push_not_cached_as_compiled(kfp_docs):
    spec = _strict_spec(kfp_docs[0])
    containers = _resources(spec)
    workers = {name: [a for a in c["args"] if a.startswith("--direct_num_workers")] for name, c in containers.items()}
    assert {name for name, found in workers.items() if found} == BEAM_COMPONENTS
    assert {tuple(workers[name]) for name in BEAM_COMPONENTS} == {("--direct_num_workers=2",)}, \
        "one Beam worker per requested CPU, not per core of the node"
    caching = {name: task.caching_options.enable_cache for name, task in spec.root.dag.tasks.items()}
    assert caching.pop("CifarExampleGen") is False and caching.pop("Pusher") is False
    assert caching.pop("Evaluator") is False, "kfp: its baseline is what is served when it runs"
    assert all(caching.values())


def test_trainer_config_holds_the_profile(kfp_docs):
    tasks = kfp_docs[0]["root"]["dag"]["tasks"]
    assert "AnomalyGate" in tasks["Transform"].get("dependentTasks", [])
    raw = tasks["Trainer"]["inputs"]["parameters"]["custom_config"]["runtimeValue"]["constant"]
    assert HParams.from_json(json.loads(raw)["hparams"]) == FULL


def test_budget_profile_defaults_to_its_budget(tmp_path):
    out = tmp_path / "p.yaml"
    target = KubeflowTarget(image="i", pipeline_root="gs://b/r", data_path="gs://b/d", serving_dir="gs://b/m")
    compile_pipeline(target, CIFAR10, with_overrides(FULL, time_budget_minutes=30.0), str(out))
    root = yaml.safe_load_all(out.read_text()).__next__()["root"]["inputDefinitions"]["parameters"]
    assert root["time_budget_minutes"]["defaultValue"] == 30.0
    assert root["epochs"]["defaultValue"] == 0.0


@pytest.mark.parametrize("fields, message", [
    ({"pipeline_root": "/local/root"}, "needs gs://bucket/path or minio://bucket/path or s3://bucket/path"),
    ({"pipeline_root": "hdfs://nn/root"}, "--target kfp needs gs://"),
    ({"pipeline_root": "minio://"}, "names no bucket"),
    ({"pipeline_root": "minio://mlpipeline/v2", "target": "vertex"}, "--target vertex needs gs://bucket/path$"),
    ({"data_path": "s3://b/cifar.tar.gz"}, "TensorFlow opens only gs://"),
    ({"serving_dir": "minio://b/models"}, "TensorFlow opens only gs://"),
    ({"data_path": "/mnt/data/x.tar.gz"}, "give the PVC"),
    ({"data_volume": VolumeMount("d", "/mnt/other")}, "not under the volume"),
    ({"target": "vertex", "data_volume": VolumeMount("d", "/mnt/data")}, "only for --target kfp"),
    ({"target": "argo"}, "target must be one of"),
    ({"trainer_gpus": -1}, "--gpus must be within"),
    ({"gpu_type": "NVIDIA_TESLA_T4"}, "--target kfp requests it as a Kubernetes resource"),
    ({"gpu_type": "nvidia.com/gpu", "target": "vertex"}, "--target vertex takes one of .*NVIDIA_TESLA_T4"),
    ({"secret_volumes": (SecretVolume("a", "/k"), SecretVolume("a", "/j"))}, "mounted twice"),
    ({"secret_env": (SecretEnv("AWS_KEY", "s", "k"), SecretEnv("AWS_KEY", "t", "k"))}, "set twice"),
    ({"target": "vertex", "secret_env": (SecretEnv("V", "s", "k"),)}, "only for --target kfp"),
    ({"env": (("1BAD", "x"),)}, "not an environment variable name"),
    ({"env": (("TF_USE_LEGACY_KERAS", "0"),)}, "set by the image"),
    ({"secret_env": (SecretEnv("PATH", "s", "k"),)}, "set by the image"),
    # a pod fails with InvalidImageName, or a push fails after training: refused when the spec is written
    ({"image": ""}, "is not a container image reference"),
    ({"image": "registry.example/cifar-tfx:1 ;rm"}, "is not a container image reference"),
    ({"image": "registry.example/Cifar-TFX:1"}, "the path in lower case"),
    ({"image": "registry.example/cifar-tfx:"}, "is not a container image reference"),
    ({"image": "r/" + "a" * 254}, "is not a container image reference"),  # a name over 255 characters
    ({"model_name": "a b"}, "model name 'a b' is not usable"),
])
def test_targets_refuse_settings_that_cannot_run(fields, message):
    values = dict(image="i", pipeline_root="gs://b/r", data_path="gs://b/d.tar.gz", serving_dir="gs://b/m")
    values.update(fields)
    with pytest.raises(ValueError, match=message):
        KubeflowTarget(**values)


@pytest.mark.parametrize("image", ["cifar-tfx", "localhost:5000/cifar-tfx:dev", "Registry.Example:443/a/b_c/d:v1.2-rc",
                                   "gcr.io/proj/cifar-tfx@sha256:" + "0" * 64,
                                   "r/" + "a" * 253 + ":1@sha256:" + "0" * 64])  # the 255 limit is the name's
def test_targets_take_every_form_of_image_reference(image):
    target = KubeflowTarget(image=image, pipeline_root="gs://b/r", data_path="gs://b/d", serving_dir="gs://b/m")
    assert target.image == image


def test_volume_names_follow_kubernetes_rules():
    with pytest.raises(ValueError, match="cannot name a PVC"):
        VolumeMount("Data_Volume", "/mnt/data")
    assert VolumeMount("data", "/mnt/data").holds("/mnt/data/cifar.tar.gz")
    assert not VolumeMount("data", "/mnt/data").holds("/mnt/database/x")


def _trainer_required_gpus(documents):
    parameters = documents[0]["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
    return int(parameters["required_gpus"]["runtimeValue"]["constant"])


def test_a_trainer_given_gpus_requires_them_unless_cpu_fallback_is_allowed(kfp_docs, tmp_path_factory):
    assert _trainer_required_gpus(kfp_docs) == 2  # kfp_docs asks for two
    fallback = _compile(tmp_path_factory, target="vertex", data_path="gs://b/d", serving_dir="gs://b/m",
                        trainer_gpus=1, allow_cpu_fallback=True)
    assert _trainer_required_gpus(fallback) == 0
    cpu_only = _compile(tmp_path_factory, target="vertex", data_path="gs://b/d", serving_dir="gs://b/m",
                        trainer_gpus=0)
    assert _trainer_required_gpus(cpu_only) == 0


def test_retries_give_every_task_a_retry_policy(tmp_path_factory):
    documents = _compile(tmp_path_factory, target="vertex", data_path="gs://b/d", serving_dir="gs://b/m", retries=3)
    spec = _strict_spec(documents[0])
    policies = {name: task.retry_policy for name, task in spec.root.dag.tasks.items()}
    assert {p.max_retry_count for p in policies.values()} == {3}
    assert {(p.backoff_duration.seconds, p.backoff_factor, p.backoff_max_duration.seconds)
            for p in policies.values()} == {(30, 2.0, 3600)}
    assert not any(task.HasField("retry_policy") for task in _strict_spec(
        _compile(tmp_path_factory, target="vertex", data_path="gs://b/d", serving_dir="gs://b/m")[0]).root.dag.tasks.values())


def test_no_gpu_no_toleration_and_given_tolerations_replace_the_default(tmp_path_factory):
    from cifar_tfx.kubeflow.compiler import parse_tolerations

    cpu = _compile(tmp_path_factory, target="kfp", data_path="gs://b/d", serving_dir="gs://b/m", trainer_gpus=0)
    assert "tolerations" not in json.dumps(cpu)
    assert [t.as_json() for t in parse_tolerations(["dedicated=gpu:NoExecute", "nvidia.com/gpu"])] == [
        {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoExecute"},
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    with pytest.raises(ValueError, match="KEY"):
        parse_tolerations([":NoSchedule"])
    with pytest.raises(ValueError, match="effect"):
        parse_tolerations(["a:Sometimes"])


def test_secrets_reach_every_task_as_files_and_variables(tmp_path_factory):
    documents = _compile(tmp_path_factory, target="kfp", data_path="gs://b/d", serving_dir="gs://b/m",
                         pipeline_root="minio://mlpipeline/v2/artifacts",
                         secret_volumes=(parse_secret_volume("gcs-key"),),
                         secret_env=(parse_secret_env("AWS_ACCESS_KEY_ID=mlpipeline-minio-artifact:accesskey"),),
                         env=(("GOOGLE_APPLICATION_CREDENTIALS", "/var/secrets/gcs-key/key.json"),))
    for executor in documents[0]["deploymentSpec"]["executors"].values():  # the driver sets container.env
        assert executor["container"]["env"] == [{"name": "GOOGLE_APPLICATION_CREDENTIALS",
                                                 "value": "/var/secrets/gcs-key/key.json"}]
    platform = json_format.ParseDict(documents[1], pipeline_spec_pb2.PlatformSpec())
    executors = platform.platforms["kubernetes"].deployment_spec.executors
    assert len(executors) == len(COMPONENTS)
    for label, struct in executors.items():
        config = json_format.ParseDict(json_format.MessageToDict(struct), k8s.KubernetesExecutorConfig(),
                                       ignore_unknown_fields=True)
        assert [(v.secret_name, v.mount_path) for v in config.secret_as_volume] == [("gcs-key", "/var/secrets/gcs-key")]
        (env,) = config.secret_as_env
        assert env.secret_name == "mlpipeline-minio-artifact"
        assert [(m.secret_key, m.env_var) for m in env.key_to_env] == [("accesskey", "AWS_ACCESS_KEY_ID")]
    with pytest.raises(ValueError, match="VARIABLE=SECRET:KEY"):
        parse_secret_env("AWS_ACCESS_KEY_ID=just-a-secret")
    with pytest.raises(ValueError, match="outside /minio"):  # the launcher's emptyDir is there
        parse_secret_volume("key:/minio/key")
    with pytest.raises(ValueError, match="cannot name a Secret"):
        parse_secret_volume("Key_File")
