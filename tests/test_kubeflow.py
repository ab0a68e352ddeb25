"""The compiled KFP-2 pipeline spec: components, GPU on the Trainer only, no Resolver, image."""

import json

import pytest
import yaml

pytest.importorskip("tfx")

from cifar_tfx.data.datasets import CIFAR10  # noqa: E402
from cifar_tfx.kubeflow.runner import KubeflowTarget, compile_pipeline  # noqa: E402
from cifar_tfx.trainer.hparams import FULL, HParams  # noqa: E402


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    out = tmp_path_factory.mktemp("kfp") / "pipeline.yaml"
    target = KubeflowTarget(image="registry.example/cifar-tfx:1", pipeline_root="gs://bucket/root",
                            data_path="/data/cifar-10-python.tar.gz", serving_dir="/models", trainer_gpus=2)
    compile_pipeline(target, CIFAR10, FULL, str(out))
    return yaml.safe_load(out.read_text())


def test_all_components_and_no_resolver(spec):
    tasks = set(spec["root"]["dag"]["tasks"])
    assert tasks == {"CifarExampleGen", "StatisticsGen", "SchemaGen", "PinSchema", "ExampleValidator",
                     "AnomalyGate", "Transform", "Trainer", "Evaluator", "Pusher"}
    assert "resolver" not in str(spec).lower()


def test_trainer_alone_gets_the_gpus(spec):
    executors = spec["deploymentSpec"]["executors"]
    with_gpu = {name: ex["container"]["resources"]["accelerator"] for name, ex in executors.items()
                if "accelerator" in ex.get("container", {}).get("resources", {})}
    assert list(with_gpu) == ["Trainer_executor"]
    assert with_gpu["Trainer_executor"] == {"count": "2", "type": "NVIDIA_TESLA_T4"}
    assert all(ex["container"]["image"] == "registry.example/cifar-tfx:1" for ex in executors.values())


def test_training_happens_after_validation_and_with_the_profile(spec):
    tasks = spec["root"]["dag"]["tasks"]
    assert "AnomalyGate" in tasks["Transform"].get("dependentTasks", [])
    raw = tasks["Trainer"]["inputs"]["parameters"]["custom_config"]["runtimeValue"]["constantValue"]["stringValue"]
    config = json.loads(raw)
    assert HParams.from_json(config["hparams"]) == FULL
    assert config["checkpoint_dir"].startswith("gs://bucket/root/checkpoints/")
