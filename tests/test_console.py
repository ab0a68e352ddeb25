"""What an operator sees: a line per component, training progress, the outcome; library noise in the run log."""

import glob
import os
import re
import subprocess
import sys

import pytest

from archive_fixtures import python_batch, write_python_archive
from cifar_tfx.data.synth import write_dataset

pytest.importorskip("tfx")

NODES = ("CifarExampleGen", "StatisticsGen", "SchemaGen", "PinSchema", "ExampleValidator", "AnomalyGate",
         "Transform", "Trainer", "Evaluator", "Pusher")
NOISE = ("WARNING", "Warning:", "absl", "tensorflow/", "cuFFT", "No iterator", "I0000", "W0000")


def _run(tmp_path, *extra):
    data = tmp_path / "data"
    if not data.exists():
        write_dataset(str(data), train=300, test=100, seed=3)
    command = [sys.executable, "-m", "cifar_tfx.cli", "run", "--data", str(data), "--profile", "demo",
               "--train-steps", "2", "--min-accuracy", "0", "--max-regression", "1",
               "--pipeline-root", str(tmp_path / "pipeline"), "--serving-dir", str(tmp_path / "serving"), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, TF_USE_LEGACY_KERAS="1"))


@pytest.mark.slow
def test_default_console_is_our_lines_only_and_the_noise_is_kept_in_the_run_log(tmp_path):
    done = _run(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    console = done.stdout + done.stderr
    for node in NODES:
        assert f"\n{node}: started\n" in "\n" + console
        assert re.search(rf"^{node}: .+  \[\d+:\d\d:\d\d\]$", console, re.M), node
    assert re.search(r"^CifarExampleGen: 300 train \+ 100 test examples, \d+ shards per split  \[", console, re.M)
    assert re.search(r"^Trainer: trained ResNet-8: 2 steps in ", console, re.M)
    assert re.search(r"^Pusher: pushed version 1  \[", console, re.M)
    assert "training ResNet-8 on 300 images" in console and "pushed: cifar10 version 1" in console
    noisy = [line for line in console.splitlines() if any(word in line for word in NOISE)]
    assert not noisy, noisy[:5]
    logs = glob.glob(str(tmp_path / "pipeline" / "logs" / "run-*.log"))
    assert len(logs) == 1 and f"goes to {logs[0]}" in done.stderr
    kept = open(logs[0]).read()
    assert "WARNING" in kept and "tensorflow" in kept  # nothing was thrown away
    # `report` is as quiet: the page's path on stdout, nothing on stderr
    report = subprocess.run([sys.executable, "-m", "cifar_tfx.cli", "report", str(tmp_path / "pipeline"),
                             "--out", str(tmp_path / "r.html")], capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, TF_USE_LEGACY_KERAS="1"))
    assert report.returncode == 0 and report.stdout.strip() == str(tmp_path / "r.html")
    assert report.stderr == ""


@pytest.mark.slow
def test_verbose_shows_library_output(tmp_path):
    verbose = _run(tmp_path, "--verbose")
    assert verbose.returncode == 0
    assert "WARNING" in verbose.stderr and "CifarExampleGen: started" in verbose.stderr
    assert not glob.glob(str(tmp_path / "pipeline" / "logs" / "*"))


@pytest.mark.slow
def test_a_failing_component_shows_its_traceback_only_with_debug(tmp_path):
    # The test split is a copy of a training batch: ExampleGen refuses it (DataLeakageError).
    leaky = write_python_archive(str(tmp_path / "leaky.tar.gz"), batches={"test_batch": python_batch(n=4, seed=1)})
    quiet = _run(tmp_path, "--data", leaky)
    assert quiet.returncode == 2 and "also occur in the training split" in quiet.stderr
    assert "Traceback" not in quiet.stderr and "CifarExampleGen: failed after " in quiet.stderr
    debug = _run(tmp_path, "--data", leaky, "--debug")
    assert debug.returncode == 2 and "Traceback (most recent call last)" in debug.stderr
    assert "DataLeakageError" in debug.stderr
