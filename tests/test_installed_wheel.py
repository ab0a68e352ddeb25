"""The package as a user installs it: the built wheel, non-editable, in a fresh virtual environment.

Nothing of the checkout is on the import path: the environment holds the locked dependencies
and the wheel, and every command runs from a folder outside the source tree. A module left out
of the wheel, a file read from the checkout or a source folder shadowing the package fails here.
Slow (about 4 minutes: installing the lock from uv's cache, importing everything, a demo run).
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from packaging_helpers import REPO, build_wheel, source_modules

pytestmark = pytest.mark.slow


def _uv() -> str:
    found = REPO / ".tools" / "bin" / "uv"  # bootstrapped by `make install`
    if found.exists():
        return str(found)
    if shutil.which("uv"):
        return shutil.which("uv")
    pytest.fail("no uv: run `make install` (it bootstraps .tools/bin/uv)")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(venv, workdir)``: a fresh environment with the lock and the wheel, and an empty folder."""
    base = tmp_path_factory.mktemp("installed")
    wheel = build_wheel(base / "wheel")
    venv = base / "venv"
    uv = _uv()
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    subprocess.run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "--no-deps",
                    "-r", str(REPO / "requirements" / "lock.txt"), str(wheel)], check=True)
    workdir = base / "elsewhere"
    workdir.mkdir()
    return venv, workdir


def _run(installed, *command, timeout=900):
    venv, workdir = installed
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(list(command), cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


def test_every_module_imports_from_the_installed_package(installed):
    venv, _ = installed
    script = ("import importlib, json, cifar_tfx; "
              "names = json.loads(input()); "
              "files = {n: importlib.import_module(n).__file__ for n in names}; print(json.dumps(files))")
    modules = sorted(m.removesuffix(".__init__") for m in source_modules())
    result = subprocess.run([str(venv / "bin" / "python"), "-c", script], input=json.dumps(modules),
                            cwd=installed[1], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "TF_USE_LEGACY_KERAS": "1", "PYTHONPATH": ""})
    assert result.returncode == 0, result.stderr[-4000:]
    files = json.loads(result.stdout.strip().splitlines()[-1])
    outside = {name: path for name, path in files.items() if not path.startswith(str(venv))}
    assert not outside, f"imported from outside the installed package: {outside}"


def test_a_demo_run_pushes_and_the_pushed_model_answers(installed):
    _, workdir = installed
    _run(installed, "cifar-tfx", "data", "synth", "--out", "data", "--train", "2000", "--test", "400")
    run = _run(installed, "cifar-tfx", "run", "--data", "data", "--profile", "demo",
               "--pipeline-root", "pipeline", "--serving-dir", "serving")
    assert "pushed: cifar10 version 1" in run.stdout + run.stderr
    version = workdir / "serving" / "cifar10" / "1"
    assert (version / "saved_model.pb").exists()

    from cifar_tfx.data.synth import make_examples
    from cifar_tfx.example_format import encode_png

    images, labels = make_examples(4, seed=3)
    paths = []
    for index, image in enumerate(images):
        path = workdir / f"image{index}.png"
        path.write_bytes(encode_png(image))
        paths.append(str(path))
    answer = _run(installed, "cifar-tfx", "predict", "--saved-model", str(version), "--json", *paths)
    predictions = json.loads(answer.stdout)
    assert len(predictions) == len(paths)
    class_names = set(_class_names())
    for prediction in predictions:
        assert prediction["top"][0]["class"] in class_names, prediction


def _class_names():
    from cifar_tfx.data.datasets import CIFAR10

    return CIFAR10.class_names

