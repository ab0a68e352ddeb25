"""The compiled ``kfp`` spec runs: every task executed as the KFP launcher would run its container.

Slow (about 6 minutes: ten subprocesses that each import TFX). See ``kfp_launcher.py``.
"""

import json
import pathlib

import numpy as np
import pytest

pytestmark = pytest.mark.slow

tf = pytest.importorskip("tensorflow")

from kfp_launcher import TaskFailed, load_documents, run_pipeline_spec  # noqa: E402
from kfp_releases import EXECUTOR_LOGS, NEWEST, RELEASES  # noqa: E402

from cifar_tfx.example_format import encode_png  # noqa: E402
from cifar_tfx.data.datasets import CIFAR10  # noqa: E402
from cifar_tfx.data.synth import make_examples, write_dataset  # noqa: E402
from cifar_tfx.kubeflow.compiler import KubeflowTarget, VolumeMount, compile_pipeline  # noqa: E402
from cifar_tfx.trainer.hparams import DEMO  # noqa: E402


@pytest.fixture(scope="module")
def compiled_on_volumes(tmp_path_factory):
    """``(spec path, models folder)``: the kfp spec compiled for data and models on two volumes."""
    folder = tmp_path_factory.mktemp("compiled")
    data, models = folder / "volumes" / "data", folder / "volumes" / "models"
    write_dataset(str(data), train=500, test=100, seed=11)
    models.mkdir(parents=True)
    spec_path = str(folder / "pipeline.yaml")
    target = KubeflowTarget(image="registry.example/cifar-tfx:1", pipeline_root="gs://bucket/root",
                            data_path=str(data), serving_dir=str(models), trainer_gpus=1, allow_cpu_fallback=True,
                            data_volume=VolumeMount("cifar-data", str(data)),
                            serving_volume=VolumeMount("tf-serving", str(models)))
    compile_pipeline(target, CIFAR10, DEMO, spec_path)
    return spec_path, models


def older_task_shapes():
    """One release line for each shape of what a task sees (its ExecutorInput's outputs, where its
    ExecutorOutput file goes) other than the newest line's; the launcher's emptyDirs differ only inside
    the image (test_image_build)."""
    seen, lines = {(NEWEST.executor_logs, NEWEST.output_file_in_task_root)}, []
    for release in RELEASES:
        shape = (release.executor_logs, release.output_file_in_task_root)
        if shape not in seen:
            seen.add(shape)
            lines.append(release)
    return lines


@pytest.mark.parametrize("release", older_task_shapes(), ids=lambda release: release.name)
def test_ingestion_runs_as_older_releases_hand_it_its_task(compiled_on_volumes, tmp_path, release):
    """The newest release line runs the whole spec below; an older one runs the first task, whose
    ExecutorInput and ExecutorOutput file take that line's shape (kfp_releases)."""
    spec_path, _ = compiled_on_volumes
    outputs = run_pipeline_spec(spec_path, str(tmp_path / "root"), {"epochs": 2.0}, release=release,
                                only_tasks=("CifarExampleGen",))
    examples = outputs["CifarExampleGen"]["examples"]["artifacts"][0]
    assert examples["metadata"]["data_fingerprint"].startswith("cifar-10-batches-py/")
    assert (EXECUTOR_LOGS in outputs["CifarExampleGen"]) == release.executor_logs


def test_compiled_kfp_spec_runs_every_task_and_pushes_a_servable_model(compiled_on_volumes, tmp_path):
    root = tmp_path / "root"
    spec_path, models = compiled_on_volumes
    spec, platform = load_documents(spec_path)
    assert platform, "the kfp target carries its volume mounts"

    # Run-time values as a user would pass them with `kubeflow submit --param`.
    outputs = run_pipeline_spec(spec_path, str(root), {"epochs": 2.0, "min_accuracy": 0.0},
                                log_dir=str(tmp_path))
    assert set(outputs) == set(spec["root"]["dag"]["tasks"])
    assert NEWEST.executor_logs and all(EXECUTOR_LOGS in produced for produced in outputs.values())
    logs = outputs["Trainer"][EXECUTOR_LOGS]["artifacts"][0]["uri"]
    assert "training ResNet-8 on 500 images" in pathlib.Path(logs).read_text(), "the launcher's log of the task"
    examples = outputs["CifarExampleGen"]["examples"]["artifacts"][0]["metadata"]
    assert examples["data_fingerprint"].startswith("cifar-10-batches-py/")
    pushed = outputs["Pusher"]["pushed_model"]["artifacts"][0]["metadata"]
    assert pushed["pushed"] == 1 and pushed["pushed_version"] == "1"
    version = models / "cifar10" / "1"
    assert pushed["pushed_destination"] == str(version)

    trainer_log = (tmp_path / "Trainer.log").read_text()
    assert "training ResNet-8 on 500 images" in trainer_log and "8 steps" in trainer_log  # round(2 x 500 / 128)

    loaded = tf.saved_model.load(str(version))
    images, labels = make_examples(8, seed=5)
    result = loaded.signatures["serving_images"](images=tf.constant([encode_png(i) for i in images]))
    assert result["probabilities"].shape == (8, 10)
    np.testing.assert_allclose(result["probabilities"].numpy().sum(axis=1), 1.0, rtol=1e-3)
    assert (models / "models.config").read_text().count("config {") == 1

    # A second run that changes only a gate bound: KFP's cache answers ExampleGen through the Trainer
    # (tests/test_kfp_cache.py), the Evaluator compares the same model with the version served now
    # (open-source KFP has no Resolver for the last blessed model), the Pusher publishes version 2.
    reused = {name: found for name, found in outputs.items() if name not in ("Evaluator", "Pusher")}
    again = run_pipeline_spec(spec_path, str(root), {"epochs": 2.0, "min_accuracy": 0.0, "max_regression": 0.0},
                              log_dir=str(tmp_path), cached=reused)
    gate = json.loads((pathlib.Path(again["Evaluator"]["evaluation"]["artifacts"][0]["uri"]) / "gate.json").read_text())
    assert gate["baseline_source"] == str(version), "the version served when the Evaluator ran"
    assert gate["baseline"]["accuracy"] == pytest.approx(gate["candidate"]["accuracy"], abs=1e-6)  # the same model
    assert gate["blessed"] and again["Pusher"]["pushed_model"]["artifacts"][0]["metadata"]["pushed_version"] == "2"


def test_harness_refuses_resolver_tasks(tmp_path):
    spec_path = str(tmp_path / "vertex.yaml")
    compile_pipeline(KubeflowTarget(image="i", pipeline_root="gs://b/r", data_path="gs://b/d", serving_dir="gs://b/m",
                                    target="vertex"), CIFAR10, DEMO, spec_path)
    with pytest.raises(TaskFailed, match="cannot run TFX importer or resolver"):
        run_pipeline_spec(spec_path, str(tmp_path / "root"), {"data_path": str(tmp_path / "missing")},
                          timeout_per_task=1)
