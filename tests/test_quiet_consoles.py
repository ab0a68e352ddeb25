"""What a user sees from the short commands that load TensorFlow: their answer, not the libraries' lines.

`predict --saved-model` and `kubeflow compile` are run as a user runs them (a fresh process, none of the
variables the test session sets to quieten TensorFlow), and their stderr must be empty.
"""

import os
import subprocess
import sys

import pytest

from cifar_tfx import console

USER_ENV = {name: value for name, value in os.environ.items()
            if name not in ("TF_CPP_MIN_LOG_LEVEL", "TF_USE_LEGACY_KERAS", "PYTHONWARNINGS")}


def _cifar_tfx(*argv, temp):
    return subprocess.run([sys.executable, "-m", "cifar_tfx.cli", *argv], capture_output=True, text=True,
                          timeout=300, env=dict(USER_ENV, TMPDIR=str(temp)))


def test_predict_with_a_saved_model_prints_its_answer_and_nothing_else(tmp_path):
    tf = pytest.importorskip("tensorflow")
    from PIL import Image

    from cifar_tfx.serving import client

    class Constant(tf.Module):
        """A stand-in for an exported model: every image is class 5 (dog) at 0.64."""

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=client.INPUT)])
        def serve(self, images):
            row = tf.constant([[0.04] * 5 + [0.64] + [0.04] * 4])
            return {"probabilities": tf.tile(row, [tf.shape(images)[0], 1])}

    model = Constant()
    tf.saved_model.save(model, str(tmp_path / "model"), signatures={client.SIGNATURE: model.serve})
    Image.new("RGB", (32, 32), (90, 60, 30)).save(tmp_path / "dog.png")

    done = _cifar_tfx("predict", str(tmp_path / "dog.png"), "--saved-model", str(tmp_path / "model"), "--top-k", "2",
                      temp=tmp_path)

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == f"{tmp_path / 'dog.png'}: dog 0.640  airplane 0.040\n"
    assert done.stderr == ""
    assert not list(tmp_path.glob("cifar-tfx-*.log"))  # the hidden log goes when the command ends well


def test_kubeflow_compile_prints_the_spec_path_and_nothing_else(tmp_path):
    pytest.importorskip("tfx")
    spec = tmp_path / "spec.yaml"
    done = _cifar_tfx("kubeflow", "compile", "--image", "registry.example.com/cifar-tfx:7",
                      "--pipeline-root", "minio://mlpipeline/v2/artifacts", "--data", "/mnt/data/c.tar.gz",
                      "--data-pvc", "cifar-data", "--serving-dir", "/mnt/models", "--serving-pvc", "tf-serving",
                      "--output", str(spec), temp=tmp_path)

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == f"{spec}\n" and spec.exists()
    assert done.stderr == ""
    assert not list(tmp_path.glob("cifar-tfx-*.log"))


def test_serving_status_over_grpc_prints_its_one_line_and_nothing_else(tmp_path):
    pytest.importorskip("tensorflow_serving")
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = _cifar_tfx("serving", "status", "--grpc", f"127.0.0.1:{port}", "--timeout", "2", temp=tmp_path)

    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr[-2000:]
    assert not list(tmp_path.glob("cifar-tfx-*.log"))


def test_library_output_is_hidden_and_the_log_removed_unless_verbose(tmp_path, capfd, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with console.libraries_quiet("predict", verbose=False):
        os.write(2, b"E cuda_fft.cc] Unable to register cuFFT factory\n")
    assert capfd.readouterr().err == ""
    assert list(tmp_path.iterdir()) == []

    with console.libraries_quiet("predict", verbose=True):
        os.write(2, b"E cuda_fft.cc] Unable to register cuFFT factory\n")
    assert capfd.readouterr().err == "E cuda_fft.cc] Unable to register cuFFT factory\n"


def test_an_expected_error_drops_the_log_and_an_unexpected_one_keeps_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with pytest.raises(LookupError):
        with console.libraries_quiet("kubeflow-compile", verbose=False, expected=(LookupError,)):
            os.write(2, b"W absl: custom_executor_spec is deprecated\n")
            raise LookupError("a one-line error the command reports itself")
    assert list(tmp_path.iterdir()) == [] and capsys.readouterr().err == ""

    with pytest.raises(ZeroDivisionError):
        with console.libraries_quiet("kubeflow-compile", verbose=False, expected=(LookupError,)):
            os.write(2, b"W absl: custom_executor_spec is deprecated\n")
            raise ZeroDivisionError()
    (log,) = tmp_path.iterdir()
    assert log.name.startswith("cifar-tfx-kubeflow-compile-")
    assert "custom_executor_spec is deprecated" in log.read_text()
    assert capsys.readouterr().err == f"library output (TensorFlow, TFX warnings) of this command: {log}\n"
