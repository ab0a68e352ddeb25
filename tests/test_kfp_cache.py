"""What KFP's cache reuses across runs that `kubeflow submit` starts, by the backend's own cache-key rule.

The open-source driver keys a task on (backend/src/v2/cacheutils/cache.go, GenerateCacheKey):
its input artifacts' names (identity, not content), its input parameter values, its
output artifacts' names and types, the image, the command and arguments, and the PVC
names; a task whose ``cachingOptions.enableCache`` is false is always run. Below, that
rule is applied task by task to the spec and parameters `submit` sent to a stand-in API
server, across successive runs sharing one cache.
"""

import json

import pytest

pytest.importorskip("kfp")

from api_standin import KfpStandIn  # noqa: E402
from kfp_launcher import _parameter_value, execution_order  # noqa: E402

from cifar_tfx.cli import main  # noqa: E402

ALL_TASKS = {"CifarExampleGen", "StatisticsGen", "SchemaGen", "PinSchema", "ExampleValidator", "AnomalyGate",
             "Transform", "Trainer", "Evaluator", "Pusher"}


@pytest.fixture(scope="module")
def volume_spec(tmp_path_factory):
    """A kfp spec whose data is on a volume (the README's open-source example)."""
    from cifar_tfx.data.datasets import CIFAR10
    from cifar_tfx.kubeflow.compiler import KubeflowTarget, VolumeMount, compile_pipeline
    from cifar_tfx.trainer.hparams import DEMO

    path = str(tmp_path_factory.mktemp("spec") / "kfp.yaml")
    compile_pipeline(KubeflowTarget(image="i:1", pipeline_root="minio://mlpipeline/v2/artifacts",
                                    data_path="/mnt/data/cifar-10-python.tar.gz", serving_dir="/mnt/models",
                                    data_volume=VolumeMount("cifar-data", "/mnt/data"),
                                    serving_volume=VolumeMount("tf-serving", "/mnt/models")),
                     CIFAR10, DEMO, path)
    return path


def _sent(spec_path, *options):
    """The spec and parameters `submit` sends to the API server."""
    with KfpStandIn() as server:
        assert main(["kubeflow", "submit", spec_path, "--host", server.url, *options]) == 0
    body = server.bodies("POST", "/apis/v2beta1/runs")[0]
    return body["pipeline_spec"]["pipeline_spec"], body["runtime_config"]["parameters"]


def _run(spec, parameters, cache, run_id):
    """The tasks of one run that come from ``cache`` (updated with this run's executions)."""
    definitions = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    values = {name: d.get("defaultValue") for name, d in definitions.items()}
    values.update(parameters)
    produced, reused = {}, set()
    for name in execution_order(spec):
        task = spec["root"]["dag"]["tasks"][name]
        component = spec["components"][task["componentRef"]["name"]]
        container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
        key = json.dumps({
            "input_artifact_names": {k: produced[(a["taskOutputArtifact"]["producerTask"],
                                                  a["taskOutputArtifact"]["outputArtifactKey"])]
                                     for k, a in task.get("inputs", {}).get("artifacts", {}).items()},
            "input_parameter_values": {k: _parameter_value(k, p, values, name)
                                       for k, p in task.get("inputs", {}).get("parameters", {}).items()},
            "output_artifacts": {k: d["artifactType"]
                                 for k, d in component.get("outputDefinitions", {}).get("artifacts", {}).items()},
            "image": container["image"], "cmd_args": container["command"] + container["args"],
        }, sort_keys=True)
        if task.get("cachingOptions", {}).get("enableCache") and key in cache:
            outputs = cache[key]
            reused.add(name)
        else:
            outputs = {k: f"{run_id}/{name}/{k}" for k in component.get("outputDefinitions", {}).get("artifacts", {})}
            cache[key] = outputs
        produced.update({(name, k): artifact for k, artifact in outputs.items()})
    return reused


def test_a_changed_gate_bound_reuses_everything_up_to_the_trainer(volume_spec, capsys):
    cache = {}
    assert _run(*_sent(volume_spec, "--data-fingerprint", "cifar10-v1"), cache, "run1") == set()
    assert "cache: data fingerprint cifar10-v1" in capsys.readouterr().err
    reused = _run(*_sent(volume_spec, "--data-fingerprint", "cifar10-v1", "--param", "min_accuracy=0.5"),
                  cache, "run2")
    assert reused == ALL_TASKS - {"Evaluator", "Pusher"}, "the gate re-decides; the Pusher always runs"
    # A new training value reuses the data work and retrains.
    reused = _run(*_sent(volume_spec, "--data-fingerprint", "cifar10-v1", "--param", "learning_rate=0.05"),
                  cache, "run3")
    assert reused == ALL_TASKS - {"Trainer", "Evaluator", "Pusher"}


def test_new_data_at_the_same_path_is_noticed(volume_spec):
    cache = {}
    _run(*_sent(volume_spec, "--data-fingerprint", "cifar10-v1"), cache, "run1")
    assert _run(*_sent(volume_spec, "--data-fingerprint", "cifar10-v2"), cache, "run2") == set()


def test_no_fingerprint_or_no_cache_runs_everything_afresh(volume_spec, capsys):
    cache = {}
    _run(*_sent(volume_spec, "--data-fingerprint", "cifar10-v1"), cache, "run1")
    assert _run(*_sent(volume_spec), cache, "run2") == set()
    assert "ExampleGen and the tasks after it run afresh: /mnt/data/cifar-10-python.tar.gz is on the cluster's " \
           "volume" in capsys.readouterr().err
    assert _run(*_sent(volume_spec, "--data-fingerprint", "cifar10-v1", "--no-cache"), cache, "run3") == set()


def test_gs_data_is_fingerprinted_by_submit_when_it_can_list_it(volume_spec, capsys):
    spec, parameters = _sent(volume_spec, "--param", "data_path=gs://no-such-bucket-here/cifar.tar.gz")
    assert "data_fingerprint" not in parameters  # this machine cannot reach Cloud Storage
    assert "cannot list gs://no-such-bucket-here/cifar.tar.gz from here" in capsys.readouterr().err
    assert spec["root"]["dag"]["tasks"]["CifarExampleGen"]["cachingOptions"] == {}
