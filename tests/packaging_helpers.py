"""Test helpers: build the wheel users install, and list what the source tree should put in it.

``setup.py`` maps the top-level folders under ``cifar_tfx``; these helpers compute the
expected module names from the folders on disk, independently of ``setup.py``'s own
package computation, so a folder it forgets is caught.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import zipfile
from typing import Set

REPO = pathlib.Path(__file__).resolve().parent.parent
# Source folder -> the package it is installed as (README, "Layout").
INSTALLED_AS = {"cifar_tfx": "cifar_tfx", "pipeline": "cifar_tfx.pipeline", "components": "cifar_tfx.components",
                "trainer": "cifar_tfx.trainer", "kubeflow": "cifar_tfx.kubeflow"}
# What never goes into the build: local state and earlier builds at the top, caches anywhere.
LOCAL_FOLDERS = {".git", ".venv", ".tools", "runs", "data", "build", "dist", ".pytest_cache"}
CACHES = shutil.ignore_patterns("__pycache__", "*.egg-info")


def source_modules() -> Set[str]:
    """Dotted names of every ``.py`` module under the mapped folders, as installed."""
    modules = set()
    for folder, package in INSTALLED_AS.items():
        for path in (REPO / folder).rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            modules.add(".".join((package,) + parts))
    return modules


def wheel_modules(wheel: pathlib.Path) -> Set[str]:
    """Dotted names of every ``.py`` module inside a built wheel."""
    with zipfile.ZipFile(wheel) as archive:
        return {name[:-3].replace("/", ".") for name in archive.namelist()
                if name.endswith(".py") and ".dist-info/" not in name}


def build_wheel(out_dir: pathlib.Path) -> pathlib.Path:
    """Build the project's wheel from a copy of the source tree (the checkout stays clean).

    Uses setuptools' PEP 517 backend in this interpreter, as ``uv build --no-build-isolation``
    and ``pip wheel --no-build-isolation`` do.
    """
    source = out_dir / "source"
    def ignore(folder, names):
        top = LOCAL_FOLDERS.intersection(names) if pathlib.Path(folder) == REPO else set()
        return top | CACHES(folder, names)

    shutil.copytree(REPO, source, ignore=ignore)
    dist = out_dir / "dist"
    dist.mkdir()
    subprocess.run([sys.executable, "-c", "import sys, setuptools.build_meta as backend; "
                    "print(backend.build_wheel(sys.argv[1]))", str(dist)],
                   cwd=source, check=True, capture_output=True, text=True)
    (wheel,) = dist.glob("cifar_tfx-*.whl")
    return wheel
