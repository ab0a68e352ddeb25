"""The task entrypoint moves minio:// and s3:// artifacts to the KFP launcher's local paths and back.

The rule it follows is LocalPathForURI / mergeRuntimeArtifacts in kubeflow/pipelines'
backend/src/v2/component/launcher_v2.go; the image test runs it for real with ``/minio``.
"""

import json
import os

import pytest

pytest.importorskip("tfx")

from kfp_releases import EXECUTOR_LOGS, EXECUTOR_LOGS_TYPE, RELEASES  # noqa: E402
from tfx.dsl.components.base import base_executor  # noqa: E402

from cifar_tfx.kubeflow import task_entrypoint  # noqa: E402
from cifar_tfx.kubeflow.task_entrypoint import launcher_path, localize, restore_output_uris  # noqa: E402


def test_launcher_paths_are_the_launchers():
    assert launcher_path("minio://mlpipeline/v2/artifacts/p/r/Trainer/1/model") == \
        "/minio/mlpipeline/v2/artifacts/p/r/Trainer/1/model"
    assert launcher_path("s3://bucket/root/x") == "/s3/bucket/root/x"
    assert launcher_path("gs://bucket/root/x") is None  # TensorFlow opens gs:// itself
    assert launcher_path("/already/local") is None


def _executor_input(input_uri, output_uri, output_file):
    examples_type = {"schemaTitle": "tfx.Examples"}
    return {"inputs": {"artifacts": {"examples": {"artifacts": [{"name": "a1", "type": examples_type,
                                                                "uri": input_uri, "metadata": {}}]}},
                       "parameterValues": {}},
            "outputs": {"artifacts": {"copied": {"artifacts": [{"name": "a2", "type": examples_type,
                                                               "uri": output_uri, "metadata": {}}]}},
                        "outputFile": output_file}}


def test_localize_rewrites_inputs_and_outputs_and_restore_gives_the_bucket_uris_back():
    executor_input = _executor_input("minio://b/root/ExampleGen/1/examples", "s3://b/root/Copy/2/copied", "/tmp/o.json")
    original = localize(executor_input)
    assert executor_input["inputs"]["artifacts"]["examples"]["artifacts"][0]["uri"] == \
        "/minio/b/root/ExampleGen/1/examples"
    assert executor_input["outputs"]["artifacts"]["copied"]["artifacts"][0]["uri"] == "/s3/b/root/Copy/2/copied"
    output = {"artifacts": {"copied": {"artifacts": [{"uri": "/s3/b/root/Copy/2/copied", "metadata": {"n": 1}}]}}}
    restored = restore_output_uris(output, original)
    assert restored["artifacts"]["copied"]["artifacts"][0] == {"uri": "s3://b/root/Copy/2/copied", "metadata": {"n": 1}}


class CopyExecutor(base_executor.BaseExecutor):
    """Copies the input artifact's file to the output artifact (as any TFX executor, through ``uri``)."""

    def Do(self, input_dict, output_dict, exec_properties):
        source = input_dict["examples"][0].uri
        target = output_dict["copied"][0].uri
        os.makedirs(target, exist_ok=True)
        with open(os.path.join(source, "data.txt")) as src, open(os.path.join(target, "data.txt"), "w") as dst:
            dst.write(src.read().upper())
        output_dict["copied"][0].set_int_custom_property("copied", 1)


@pytest.mark.parametrize("release", RELEASES, ids=lambda release: release.name)
def test_a_tfx_executor_reads_and_writes_at_the_launcher_paths(tmp_path, monkeypatch, release):
    # Stand-in for the pod's /minio emptyDir: the launcher has downloaded the input there.
    minio = tmp_path / "minio"
    monkeypatch.setitem(task_entrypoint.LAUNCHER_PATHS, "minio://", f"{minio}/")
    downloaded = minio / "mlpipeline" / "root" / "ExampleGen" / "1" / "examples"
    downloaded.mkdir(parents=True)
    (downloaded / "data.txt").write_text("ten images")
    (minio / "mlpipeline" / "root" / "Copy" / "2").mkdir(parents=True)  # prepareOutputFolders: the parent only
    output_file = tmp_path / "kfp_outputs" / "output_metadata.json"
    executor_input = _executor_input("minio://mlpipeline/root/ExampleGen/1/examples",
                                     "minio://mlpipeline/root/Copy/2/copied", str(output_file))
    logs_uri = "minio://mlpipeline/root/Copy/2/executor-logs"
    if release.executor_logs:  # the driver's own output: TFX has no class for system.Artifact
        executor_input["outputs"]["artifacts"][EXECUTOR_LOGS] = {"artifacts": [{
            "name": EXECUTOR_LOGS, "type": EXECUTOR_LOGS_TYPE, "uri": logs_uri}]}
    with pytest.raises(SystemExit) as ended:  # absl's app.run exits
        task_entrypoint.main(["--executor_class_path", f"{__name__}.CopyExecutor",
                              "--json_serialized_invocation_args", json.dumps(executor_input)])
    assert ended.value.code in (None, 0)
    # Written where the launcher uploads from, and recorded under the bucket URI it uploads to.
    assert (minio / "mlpipeline" / "root" / "Copy" / "2" / "copied" / "data.txt").read_text() == "TEN IMAGES"
    produced = json.loads(output_file.read_text())["artifacts"]["copied"]["artifacts"][0]
    assert produced["uri"] == "minio://mlpipeline/root/Copy/2/copied"
    assert produced["metadata"]["copied"] == 1
    # The launcher's output stays the launcher's: not in the ExecutorOutput, nothing written at its path.
    assert set(json.loads(output_file.read_text())["artifacts"]) == {"copied"}
    assert not (minio / "mlpipeline" / "root" / "Copy" / "2" / "executor-logs").exists()


def test_only_outputs_of_tfx_types_reach_tfx():
    tfx_model = {"instanceSchema": "title: tfx.Model\ntype: object\n"}
    executor_input = {"outputs": {"artifacts": {
        "model": {"artifacts": [{"type": tfx_model, "uri": "minio://b/m"}]},
        "examples": {"artifacts": [{"type": {"schemaTitle": "tfx.Examples"}, "uri": "minio://b/e"}]},
        EXECUTOR_LOGS: {"artifacts": [{"type": EXECUTOR_LOGS_TYPE, "uri": "minio://b/l"}]},
        "metrics": {"artifacts": [{"type": {"schemaTitle": "system.Metrics"}, "uri": "minio://b/x"}]}}}}
    assert task_entrypoint.set_aside_backend_outputs(executor_input) == [EXECUTOR_LOGS, "metrics"]
    assert set(executor_input["outputs"]["artifacts"]) == {"model", "examples"}


def test_a_call_without_the_executor_input_is_one_line():
    with pytest.raises(SystemExit, match="json_serialized_invocation_args is missing"):
        task_entrypoint.split_invocation(["--executor_class_path", "x.Y"])
