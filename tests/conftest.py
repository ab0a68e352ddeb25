"""Shared fixtures. TF_USE_LEGACY_KERAS must be set before any test imports TensorFlow."""

import os
import pathlib
import shutil

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = pathlib.Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO / "tests" / "data" / "cifar10-mini"  # 700 real images: see its README


@pytest.fixture(scope="session")
def sample_archives():
    """Real CIFAR-10 archives (python and binary layout): 5 x 100 train and 200 test images."""
    python = SAMPLE_DIR / "cifar-10-python.tar.gz"
    binary = SAMPLE_DIR / "cifar-10-binary.tar.gz"
    if not python.exists():
        pytest.fail(f"the real CIFAR-10 sample is expected at {SAMPLE_DIR}")
    return {"python": str(python), "binary": str(binary)}


@pytest.fixture(scope="session")
def small_synth(tmp_path_factory):
    """A small synthetic dataset (500 train / 100 test) written by `data synth`."""
    from cifar_tfx.data.synth import write_dataset

    out = tmp_path_factory.mktemp("synth")
    write_dataset(str(out), train=500, test=100, seed=7)
    return str(out)


@pytest.fixture
def copy_of(tmp_path):
    """Copy a file into the test's tmp dir (the fixture stays untouched)."""

    def _copy(path):
        target = tmp_path / pathlib.Path(path).name
        shutil.copy(path, target)
        target.chmod(0o644)
        return str(target)

    return _copy
