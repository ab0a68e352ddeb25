"""The wheel users install holds every module of the source tree, under the names the code imports."""

import zipfile

import pytest

from packaging_helpers import build_wheel, source_modules, wheel_modules


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_holds_every_module_of_the_source_tree(wheel):
    expected = source_modules()
    assert "cifar_tfx.serving.model_config" in expected and "cifar_tfx.kubeflow.compiler" in expected
    missing = sorted(expected - wheel_modules(wheel))
    assert not missing, f"modules missing from {wheel.name}: {missing}"


def test_the_wheel_holds_nothing_but_the_package(wheel):
    stray = sorted(m for m in wheel_modules(wheel) if not m.startswith("cifar_tfx."))
    assert not stray, f"{wheel.name} installs modules outside cifar_tfx: {stray}"
    assert sorted(wheel_modules(wheel) - source_modules()) == [], "the wheel holds modules the tree does not"


def test_the_wheel_declares_the_command_line(wheel):
    with zipfile.ZipFile(wheel) as archive:
        entry_points = next(archive.read(n).decode() for n in archive.namelist() if n.endswith("entry_points.txt"))
    assert "cifar-tfx = cifar_tfx.cli:main" in entry_points
