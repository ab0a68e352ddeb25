"""Build times and sizes of the Kubeflow image, with the scripts users run (kubeflow/*.sh).

    python -m benchmarks.image_build [--cuda]

Prints, one line each: the Debian-packages base (kubeflow/debian_base.sh), a cold CPU build on it
(no cached layer: the base is new), a warm build after a one-line code change (the lock's layers
cached), the image sizes and, with ``--cuda``, a warm CUDA build (WITH_CUDA=1) and its size.
Needs root, buildah and mmdebstrap; removes what it built (and dangling layers: `buildah rmi --prune`).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
import uuid

REPO = pathlib.Path(__file__).resolve().parent.parent
ENV = {**os.environ, "STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}


LOCAL_FOLDERS = {".git", ".venv", ".tools", "runs", "data", "build", "dist", ".pytest_cache"}


def _timed(*command: str, **env: str) -> float:
    started = time.monotonic()
    done = subprocess.run(list(command), env={**ENV, **env}, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{command[0]} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return time.monotonic() - started


def _size(image: str) -> str:
    listing = subprocess.run(["buildah", "images", "--json", image], env=ENV, check=True, capture_output=True,
                             text=True).stdout
    return str(json.loads(listing)[0]["size"])  # buildah gives it formatted, e.g. "3.35 GB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuda", action="store_true", help="also build WITH_CUDA=1 (downloads ~3 GB)")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    base, cpu, cuda = (f"localhost/bench-{kind}:{tag}" for kind in ("base", "cpu", "cuda"))
    with tempfile.TemporaryDirectory() as work:
        source = pathlib.Path(work) / "repo"
        # Local state at the top only: a pattern such as "data" would also drop cifar_tfx/data.
        shutil.copytree(REPO, source, ignore=lambda folder, names: LOCAL_FOLDERS.intersection(names)
                        if pathlib.Path(folder) == REPO else {n for n in names if n == "__pycache__"})
        build = str(source / "kubeflow" / "build_image.sh")
        try:
            print(f"base from Debian packages: {_timed(str(source / 'kubeflow' / 'debian_base.sh'), base):.0f} s")
            print(f"cold CPU build: {_timed(build, cpu, BASE_IMAGE=base, WITH_CUDA='0'):.0f} s")
            with open(source / "trainer" / "model.py", "a") as module:
                module.write("\n# a code change\n")
            print(f"warm CPU build after a code change: {_timed(build, cpu, BASE_IMAGE=base, WITH_CUDA='0'):.0f} s")
            print(f"sizes: base {_size(base)}, CPU image {_size(cpu)}")
            if args.cuda:
                print(f"CUDA build (apt and uv layers cached): "
                      f"{_timed(build, cuda, BASE_IMAGE=base, WITH_CUDA='1'):.0f} s, size {_size(cuda)}")
        finally:
            for image in (cuda, cpu, base):
                subprocess.run(["buildah", "rmi", image], env=ENV, capture_output=True)
            subprocess.run(["buildah", "rmi", "--prune"], env=ENV, capture_output=True)


if __name__ == "__main__":
    main()
