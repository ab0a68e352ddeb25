"""Install the CIFAR-10 TFX pipeline as the package ``cifar_tfx``.

The top-level folders ``pipeline/``, ``components/``, ``trainer/`` and ``kubeflow/``
are installed as sub-packages of ``cifar_tfx`` so that none of them can shadow a
real distribution (the Kubeflow SDK owns the top-level name ``kubeflow``). The
package list is computed from the folders (every folder with an ``__init__.py``),
never written out: tests/test_wheel.py builds the wheel and fails if any module of
the source tree is missing from it.

Dependencies are pinned in ``requirements/lock.txt`` and installed from it
(``make install``); ``install_requires`` names only the direct ones, unpinned.
"""

from setuptools import find_packages, setup

# Installed package name -> the source folder that holds it.
PACKAGE_FOLDERS = {
    "cifar_tfx": "cifar_tfx",
    "cifar_tfx.pipeline": "pipeline",
    "cifar_tfx.components": "components",
    "cifar_tfx.trainer": "trainer",
    "cifar_tfx.kubeflow": "kubeflow",
}


def mapped_packages():
    """Every package under the mapped folders, named as it is installed."""
    packages = []
    for package, folder in PACKAGE_FOLDERS.items():
        packages.append(package)
        packages += [f"{package}.{sub}" for sub in find_packages(where=folder)]
    return packages


setup(
    name="cifar-tfx",
    version="0.1.0",
    description="TFX pipeline that trains a CIFAR ResNet-(6n+2) and publishes it to a TF Serving model folder",
    python_requires=">=3.10",
    packages=mapped_packages(),
    package_dir=PACKAGE_FOLDERS,
    install_requires=["tfx[kfp]==1.16.0", "numpy"],
    entry_points={"console_scripts": ["cifar-tfx = cifar_tfx.cli:main"]},
)
