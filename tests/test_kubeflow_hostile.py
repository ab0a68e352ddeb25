"""What a user or a server may hand `kubeflow compile` and `kubeflow submit`: each is one error line, exit 2,
before anything reaches a cluster, and no call waits forever."""

import os
import time

import pytest

pytest.importorskip("kfp")

from api_standin import KfpStandIn  # noqa: E402

from cifar_tfx.cli import EXIT_BAD_INPUT, main  # noqa: E402
from cifar_tfx.kubeflow.compiler import KubeflowTarget, VolumeMount, parse_secret_volume  # noqa: E402

ON_VOLUMES = dict(image="reg/cifar-tfx:1", pipeline_root="minio://mlpipeline/v2/artifacts", data_path="/mnt/data/d",
                  serving_dir="/mnt/models", data_volume=VolumeMount("cifar-data", "/mnt/data"),
                  serving_volume=VolumeMount("tf-serving", "/mnt/models"))


@pytest.mark.parametrize("change, says", [
    (lambda: {"secret_volumes": (parse_secret_volume("gcs.key"),)}, "'gcs.key' cannot name a Secret mounted"),
    (lambda: {"serving_volume": VolumeMount("models", "/mnt/models"),
              "secret_volumes": (parse_secret_volume("models:/var/m"),)}, "--secret models and --serving-pvc models"),
    (lambda: {"data_volume": VolumeMount("kfp-launcher", "/mnt/data")}, "the backend gives every task pod a volume"),
    (lambda: {"data_volume": VolumeMount("d" * 64, "/mnt/data")}, "DNS-1123 label"),
    (lambda: {"trainer_gpus": 1_000_000}, "--gpus must be within [0, 16]"),
    (lambda: {"gpu_node_selector": (("a b", "c d"),)}, "not a Kubernetes node label"),
    (lambda: {"gpu_node_selector": (("cloud.google.com/gke-accelerator", "x" * 64),)}, "not a Kubernetes node label"),
    (lambda: {"serving_volume": None}, "give the PVC that holds it (--serving-pvc)"),
])
def test_what_the_kubelet_or_the_driver_would_refuse_is_refused_at_compile(change, says):
    with pytest.raises(ValueError) as refused:
        KubeflowTarget(**{**ON_VOLUMES, **change()})
    assert says in str(refused.value)


def test_valid_names_and_labels_compile():
    KubeflowTarget(**ON_VOLUMES, secret_volumes=(parse_secret_volume("gcs-key"),), trainer_gpus=16,
                   gpu_node_selector=(("cloud.google.com/gke-accelerator", "nvidia-tesla-t4"), ("pool", ""),))


@pytest.mark.parametrize("output, says", [("x.json", "must end in .yaml"), ("missing/x.yaml", "not a writable folder"),
                                          (".", "is a folder")])
def test_a_bad_output_is_refused_before_the_imports(tmp_path, capsys, output, says):
    os.chdir(tmp_path)
    if output == ".":
        (tmp_path / "d.yaml").mkdir()
        output = "d.yaml"
    started = time.monotonic()
    code = main(["kubeflow", "compile", "--image", "r/i:1", "--pipeline-root", "gs://b/r", "--data", "gs://b/d",
                 "--serving-dir", "gs://b/m", "--output", output])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and says in err and err.count("\n") == 1
    assert time.monotonic() - started < 5


@pytest.fixture(scope="module")
def volume_spec(tmp_path_factory):
    from cifar_tfx.data.datasets import CIFAR10
    from cifar_tfx.kubeflow.compiler import compile_pipeline
    from cifar_tfx.trainer.hparams import DEMO

    path = str(tmp_path_factory.mktemp("spec") / "kfp.yaml")
    compile_pipeline(KubeflowTarget(**ON_VOLUMES), CIFAR10, DEMO, path)
    return path


def _submit(spec, host, *extra):
    return main(["kubeflow", "submit", spec, "--host", host, "--poll-seconds", "0.01", *extra])


@pytest.mark.parametrize("param, says", [
    ("batch_size=-5", "batch_size must be within [1, 8192]"),
    ("epochs=1e12", "epochs must be within"),
    ("learning_rate=inf", "not a finite number"),
    ("batch_size=" + "9" * 5000, "is not a whole number of this size"),
    ("data_path=hdfs://nn/cifar", "TensorFlow opens only gs:// URIs"),
    ("data_path=/elsewhere/cifar", "is not under the volume mounted at '/mnt/data'"),
])
def test_run_values_are_checked_by_their_declarations_before_anything_is_sent(volume_spec, capsys, param, says):
    with KfpStandIn() as server:
        code = _submit(volume_spec, server.url, "--param", param)
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and says in err and err.count("\n") == 1
    assert not server.bodies("POST", "/apis/v2beta1/runs")


def test_the_compiled_value_and_values_in_bounds_are_sent(volume_spec):
    with KfpStandIn() as server:
        assert _submit(volume_spec, server.url, "--param", "depth=0", "--param", "batch_size=64",
                       "--param", "data_path=/mnt/data/other") == 0
    sent = server.bodies("POST", "/apis/v2beta1/runs")[0]["runtime_config"]["parameters"]
    assert sent["depth"] == 0 and sent["batch_size"] == 64 and sent["data_path"] == "/mnt/data/other"


@pytest.mark.parametrize("content, says", [
    ("just a string\n", "holds no PipelineSpec"),
    ("pipelineInfo: {name: x}\nroot: {dag: {tasks: {}}}\n", "holds no PipelineSpec with tasks"),
    ("[" * 100_000 + "]" * 100_000, "nests deeper"),
    (b"\x89PNG\r\n\x1a\n\x00\xff", "is not text"),
    ("fifo", "not a regular file"),
])
def test_a_file_that_is_no_compiled_spec_is_one_line(tmp_path, capsys, content, says):
    spec = tmp_path / "spec.yaml"
    if content == "fifo":
        os.mkfifo(spec)
    elif isinstance(content, bytes):
        spec.write_bytes(content)
    else:
        spec.write_text(content)
    assert _submit(str(spec), "http://127.0.0.1:9") == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


@pytest.mark.parametrize("content, says", [
    (b"\x00\xffbinary", "is not a token"), (b"first\nsecond\n", "a bearer token is one line"), ("fifo", "not a regular")])
def test_a_token_file_that_holds_no_token_is_one_line(volume_spec, tmp_path, capsys, content, says):
    token = tmp_path / "token"
    if content == "fifo":
        os.mkfifo(token)
    else:
        token.write_bytes(content)
    assert _submit(volume_spec, "http://127.0.0.1:9", "--token-file", str(token)) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1


@pytest.mark.parametrize("answer, says", [(b"not json", "answered without a run id"),
                                          (b"[" * 200_000 + b"]" * 200_000, "not a KFP API answer")])
def test_a_server_that_answers_no_run_is_not_a_submitted_run(volume_spec, capsys, answer, says):
    with KfpStandIn(run_answer=answer) as server:
        code = _submit(volume_spec, server.url)
    captured = capsys.readouterr()
    assert code == EXIT_BAD_INPUT and says in captured.err and captured.err.count("\n") == 1
    assert "run None" not in captured.out


def test_a_server_that_accepts_and_hangs_is_left_after_the_timeout(volume_spec, capsys):
    with KfpStandIn(hang_seconds=60) as server:
        started = time.monotonic()
        code = _submit(volume_spec, server.url, "--timeout", "2")
        waited = time.monotonic() - started
    assert code == EXIT_BAD_INPUT and "timed out" in capsys.readouterr().err.lower()
    assert waited < 15


@pytest.mark.parametrize("flag, value", [("--timeout", "-1"), ("--timeout", "nan"), ("--timeout", "inf"),
                                         ("--timeout", "1e300"), ("--poll-seconds", "-1")])
def test_waiting_times_are_finite_and_positive(volume_spec, capsys, flag, value):
    with pytest.raises(SystemExit) as ended:
        _submit(volume_spec, "http://127.0.0.1:9", flag, value)
    assert ended.value.code == EXIT_BAD_INPUT and "seconds" in capsys.readouterr().err
