"""Install the CIFAR-10 TFX pipeline.

The top-level folders ``pipeline/``, ``components/``, ``trainer/`` and ``kubeflow/``
are installed as sub-packages of ``cifar_tfx`` so that none of them can shadow a
real distribution (the Kubeflow SDK owns the top-level name ``kubeflow``).
Dependencies are pinned in ``requirements/lock.txt`` and installed from it
(``make install``); ``install_requires`` names only the direct ones, unpinned.
"""

from setuptools import setup

SUBPACKAGES = ("pipeline", "components", "trainer", "kubeflow")

setup(
    name="cifar-tfx",
    version="0.1.0",
    description="TFX pipeline that trains a CIFAR ResNet-56 and exports it for TF Serving",
    python_requires=">=3.10",
    packages=["cifar_tfx", "cifar_tfx.data"] + [f"cifar_tfx.{name}" for name in SUBPACKAGES],
    package_dir={"cifar_tfx": "cifar_tfx", **{f"cifar_tfx.{name}": name for name in SUBPACKAGES}},
    install_requires=["tfx[kfp]==1.16.0", "numpy"],
    entry_points={"console_scripts": ["cifar-tfx = cifar_tfx.cli:main"]},
)
