"""The compiled ``kfp`` spec runs under the newest KFP release line: every task executed as its launcher
would run the task's container (the older lines: test_kfp_release_lines.py).

Slow (about 6 minutes: ten subprocesses that each import TFX). See ``kfp_launcher.py``.
"""

import json
import pathlib

import numpy as np
import pytest

pytestmark = pytest.mark.slow

tf = pytest.importorskip("tensorflow")

from kfp_launcher import TaskFailed, load_documents, run_pipeline_spec  # noqa: E402
from kfp_releases import EXECUTOR_LOGS, NEWEST  # noqa: E402
from compiled_specs import compile_on_volumes  # noqa: E402

from cifar_tfx.example_format import encode_png  # noqa: E402
from cifar_tfx.data.datasets import CIFAR10  # noqa: E402
from cifar_tfx.data.synth import make_examples  # noqa: E402
from cifar_tfx.kubeflow.compiler import KubeflowTarget, compile_pipeline  # noqa: E402
from cifar_tfx.trainer.hparams import DEMO  # noqa: E402


def test_compiled_kfp_spec_runs_every_task_and_pushes_a_servable_model(tmp_path):
    root = tmp_path / "root"
    spec_path, models = compile_on_volumes(tmp_path / "compiled")
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
