"""The serving check with TF Serving itself, when its binary is on this machine (InfraValidator-style).

:mod:`cifar_tfx.serving.check` applies TF Serving's rules in Python. Where a
``tensorflow_model_server`` binary is on ``PATH``, :func:`check_with_server` also starts it on the
candidate, as TFX's InfraValidator does with a real server: a temporary ``models.config`` naming
the SavedModel as version 1 of model ``candidate``, the server on two free local ports, its REST
status polled until version 1 is ``AVAILABLE`` (or reported ``END`` with a load error, or the
process exits), then the warm-up images sent through the project's REST client, whose answers
must pass the same checks as any prediction (:func:`client.checked_predictions`). The server is
stopped in every case.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import List, Optional, Sequence

from cifar_tfx.serving import client, versions

SERVER_BINARY = "tensorflow_model_server"
MODEL = "candidate"


def server_binary() -> Optional[str]:
    """The TF Serving binary on ``PATH``, or ``None``."""
    return shutil.which(SERVER_BINARY)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def check_with_server(binary: str, export_dir: str, images: Sequence[bytes], class_names: Sequence[str],
                      load_seconds: float = 300.0) -> str:
    """Serve ``export_dir`` with ``binary`` and classify ``images`` over REST; return what was checked.

    Raises :class:`client.PredictError` (the caller's refusal) when the server does not load the
    model, says why it failed, stops, or answers what the client refuses.
    """
    with tempfile.TemporaryDirectory(prefix="cifar-tfx-server-check-") as scratch:
        base_path = os.path.join(scratch, MODEL)
        os.makedirs(base_path)
        os.symlink(os.path.abspath(export_dir), os.path.join(base_path, "1"))
        config = os.path.join(scratch, "models.config")
        with open(config, "w") as out:
            out.write(f'model_config_list {{ config {{ name: "{MODEL}" base_path: "{base_path}" '
                      'model_platform: "tensorflow" } }\n')
        rest = f"http://127.0.0.1:{_free_port()}"
        log_path = os.path.join(scratch, "server.log")
        with open(log_path, "w") as log:
            server = subprocess.Popen([binary, f"--port={_free_port()}", f"--rest_api_port={rest.rsplit(':', 1)[1]}",
                                       f"--model_config_file={config}"], stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_available(server, rest, load_seconds, log_path)
            answers = client.predict_rest(rest, MODEL, list(images), class_names, timeout=60.0)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    return (f"{SERVER_BINARY} loaded it and answered {len(answers)} warm-up image(s) over REST, "
            "answers checked as the client checks them")


def _wait_until_available(server: subprocess.Popen, rest: str, load_seconds: float, log_path: str,
                          clock=time.monotonic, sleep=time.sleep) -> None:
    """Return once the server reports the candidate AVAILABLE; one :class:`client.PredictError` if the process
    exits, the version's load fails (END with an error) or ``load_seconds`` pass (``clock``/``sleep`` injected)."""
    deadline = clock() + load_seconds
    while clock() < deadline:
        if server.poll() is not None:
            raise client.PredictError(f"{SERVER_BINARY} exited {server.returncode} before loading the model: "
                                      f"{_last_line(log_path)}")
        try:
            states: List[versions.VersionStatus] = versions.model_status_rest(rest, MODEL, timeout=5.0)
        except client.PredictError:
            states = []  # not listening yet, or the model not known yet
        if any(state.state == "AVAILABLE" for state in states):
            return
        failed = [state for state in states if state.state == "END" and state.error]
        if failed:
            raise client.PredictError(f"{SERVER_BINARY} did not load the model: {failed[0].error}")
        sleep(0.5)
    raise client.PredictError(f"{SERVER_BINARY} did not make the model AVAILABLE within {load_seconds:g} s: "
                              f"{_last_line(log_path)}")


def _last_line(path: str) -> str:
    with open(path, errors="replace") as handle:
        lines = [line.strip() for line in handle if line.strip()]
    return lines[-1][:300] if lines else "no output"
