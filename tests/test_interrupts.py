"""Ctrl-C and SIGTERM during training: one line naming the stage and how to resume, exit 130 / 143.

Slow (about 2 minutes: two runs started side by side, each stopped once its Trainer reports progress).
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from cifar_tfx.cli_common import EXIT_INTERRUPTED, EXIT_TERMINATED, Terminated, interruption_in

pytestmark = pytest.mark.slow


def test_interruptions_are_found_inside_the_errors_that_wrap_them():
    try:
        try:
            raise Terminated()
        except Terminated as inner:
            raise RuntimeError("a Beam stage failed") from inner
    except RuntimeError as outer:
        assert isinstance(interruption_in(outer), Terminated)
    assert interruption_in(ValueError("no")) is None


def _start_run(data, root):
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    # SIGINT as a terminal's foreground command has it, also when pytest itself was started in the background
    # (a shell without job control starts background commands with SIGINT ignored, and children inherit that).
    return subprocess.Popen(
        [sys.executable, "-m", "cifar_tfx.cli", "run", "--data", str(data), "--profile", "demo", "--epochs", "200",
         "--log-every-seconds", "1", "--pipeline-root", str(root / "pipeline"), "--serving-dir", str(root / "serving")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_training(process, timeout=600):
    """Read stderr until the Trainer prints a progress line; return what was read."""
    seen = []
    deadline = time.monotonic() + timeout
    for line in process.stderr:
        seen.append(line)
        if "img/s" in line or time.monotonic() > deadline:
            break
    return seen


@pytest.mark.parametrize("signum, code, word", [(signal.SIGINT, EXIT_INTERRUPTED, "interrupted"),
                                               (signal.SIGTERM, EXIT_TERMINATED, "terminated")])
def test_a_signal_during_training_says_where_the_run_stopped_and_how_it_resumes(signum, code, word, small_synth,
                                                                                 tmp_path):
    process = _start_run(small_synth, tmp_path)
    try:
        seen = _wait_for_training(process)
        assert any("img/s" in line for line in seen), "".join(seen)[-2000:]
        process.send_signal(signum)
        rest = process.stderr.read()
        assert process.wait(timeout=300) == code, rest[-2000:]
    finally:
        process.kill()
    last = rest.strip().splitlines()[-1]
    assert last == f"{word} during Trainer: the same command resumes training from its last checkpoint (saved every " \
                   "epoch)", rest[-2000:]
    assert "failed" not in rest and "Traceback" not in rest
    assert not (tmp_path / "serving" / "cifar10").exists(), "nothing published"
