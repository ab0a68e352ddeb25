"""What ``create_pipeline`` hands each component, read from the built pipeline without running it.

Local runs are built by ``local_runner.local_pipeline`` and Kubeflow runs by ``compiler.build_pipeline``,
as their runners build them. Every value passed here differs from its default, so a constant in the
wiring fails these tests.
"""

import dataclasses
import json

import pytest

pytest.importorskip("tfx")

from google.protobuf import json_format  # noqa: E402
import tensorflow_model_analysis as tfma  # noqa: E402
from tfx.types import standard_component_specs  # noqa: E402

from cifar_tfx.components.serving_pusher import CLASS_NAMES_KEY, MAX_LATENCY_KEY, SERVER_BASE_PATH_KEY  # noqa: E402
from cifar_tfx.data.datasets import CIFAR10, FASHION_MNIST  # noqa: E402
from cifar_tfx.example_format import LABEL_KEY  # noqa: E402
from cifar_tfx.pipeline import component_ids as ids  # noqa: E402
from cifar_tfx.trainer.hparams import DEMO, HParams  # noqa: E402

HPARAMS = dataclasses.replace(DEMO, max_serving_latency_ms=1234.0, min_accuracy=0.61, max_regression=0.02,
                              min_class_accuracy=0.15)


def components_of(pipeline):
    return {component.id: component for component in pipeline.components}


def custom_config(component):
    return json.loads(component.exec_properties[standard_component_specs.CUSTOM_CONFIG_KEY])


def eval_config(evaluator) -> tfma.EvalConfig:
    return json_format.Parse(evaluator.exec_properties[standard_component_specs.EVAL_CONFIG_KEY], tfma.EvalConfig())


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The pipeline of a local run on Fashion-MNIST (not the default dataset), built by the local runner."""
    from tfx.orchestration import metadata

    from cifar_tfx.pipeline.local_runner import LocalRun, local_pipeline

    root = tmp_path_factory.mktemp("local")
    (root / "data").mkdir()
    (root / "data" / "train.gz").write_bytes(b"records")
    run = LocalRun(pipeline_name="p", pipeline_root=str(root / "root"), data_path=str(root / "data"),
                   dataset=FASHION_MNIST, hparams=HPARAMS, serving_dir=str(root / "serving"), model_name="garments",
                   server_base_path="/models")
    connection = metadata.sqlite_metadata_connection_config(str(root / "metadata.sqlite"))
    return components_of(local_pipeline(run, connection))


def test_the_pusher_is_handed_the_class_names_the_latency_bound_and_the_servers_path(local):
    config = custom_config(local[ids.PUSHER])
    assert config[CLASS_NAMES_KEY] == list(FASHION_MNIST.class_names), "without them the serving check is skipped"
    assert config[MAX_LATENCY_KEY] == 1234.0
    assert config[SERVER_BASE_PATH_KEY] == "/models"
    destination = json.loads(local[ids.PUSHER].exec_properties[standard_component_specs.PUSH_DESTINATION_KEY])
    assert destination["filesystem"]["base_directory"].endswith("/serving/garments")


def test_a_local_run_compares_with_the_last_blessed_model(local):
    baseline = local[ids.EVALUATOR].inputs[standard_component_specs.BASELINE_MODEL_KEY]
    assert baseline.producer_component_id == ids.LAST_BLESSED_MODEL
    assert baseline.output_key == "model"
    resolver = local[ids.LAST_BLESSED_MODEL]
    assert local[ids.EVALUATOR].inputs[standard_component_specs.MODEL_KEY].producer_component_id == ids.TRAINER
    assert resolver.id in {upstream.id for upstream in local[ids.EVALUATOR].upstream_nodes}


def test_the_evaluator_measures_every_class_and_applies_the_runs_bounds(local):
    evaluator = local[ids.EVALUATOR]
    slices = [list(spec.feature_keys) for spec in eval_config(evaluator).slicing_specs]
    assert sorted(slices) == [[], [LABEL_KEY]], "the per-label slice holds the per-class accuracy"
    properties = evaluator.exec_properties
    assert (properties["min_accuracy"], properties["max_regression"], properties["min_class_accuracy"]) == \
        (0.61, 0.02, 0.15)
    assert json.loads(properties["class_names"]) == list(FASHION_MNIST.class_names)


def test_the_trainer_is_handed_the_training_values_and_the_dataset(local):
    config = custom_config(local[ids.TRAINER])
    assert HParams.from_json(config["hparams"]) == dataclasses.replace(
        HPARAMS, **{name: getattr(HParams(), name) for name in ("max_serving_latency_ms", "min_accuracy",
                                                                "max_regression", "min_class_accuracy")})
    assert config["dataset"] == FASHION_MNIST.name


def _kubeflow(target_name, **fields):
    from cifar_tfx.kubeflow.compiler import KubeflowTarget, build_pipeline

    paths = dict(pipeline_root="gs://bucket/root", data_path="gs://bucket/data", serving_dir="gs://bucket/serving")
    target = KubeflowTarget(image="registry.example/cifar:1", target=target_name, **paths, **fields)
    return components_of(build_pipeline(target, CIFAR10, HPARAMS))


SIZES = dict(trainer_cpus=7.0, trainer_memory_gb=21.0, task_cpus=3.0, task_memory_gb=9.0, light_cpus=0.25,
             light_memory_gb=1.5)


def test_on_vertex_each_task_is_limited_to_its_own_size():
    built = _kubeflow("vertex", **SIZES)
    trainer = built[ids.TRAINER].platform_config
    assert (trainer.cpu_limit, trainer.memory_limit) == (7.0, 21.0)
    assert trainer.accelerator.count == 1
    assert (built[ids.EVALUATOR].platform_config.cpu_limit, built[ids.EVALUATOR].platform_config.memory_limit) == \
        (3.0, 9.0)
    assert (built[ids.PUSHER].platform_config.cpu_limit, built[ids.PUSHER].platform_config.memory_limit) == \
        (0.25, 1.5)
    assert built[ids.EVALUATOR].inputs[standard_component_specs.BASELINE_MODEL_KEY].producer_component_id == \
        ids.LAST_BLESSED_MODEL


def test_on_kfp_each_task_requests_its_own_size():
    built = _kubeflow("kfp", **SIZES)
    trainer = built[ids.TRAINER].platform_config
    assert (trainer.cpu_request, trainer.memory_request) == (7.0, 21.0)
    assert (built[ids.TRANSFORM].platform_config.cpu_request, built[ids.SCHEMA_GEN].platform_config.cpu_request) == \
        (3.0, 0.25)
    evaluator = built[ids.EVALUATOR]
    assert standard_component_specs.BASELINE_MODEL_KEY not in evaluator.inputs or \
        evaluator.inputs[standard_component_specs.BASELINE_MODEL_KEY] is None
    assert evaluator.exec_properties["baseline_serving_dir"] == "gs://bucket/serving"
