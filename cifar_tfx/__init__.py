"""CIFAR-10 ResNet training pipeline on TFX.

The importable packages are ``cifar_tfx`` (data ingestion, command line) and its
sub-packages mapped onto the top-level folders of the repository:
``cifar_tfx.pipeline`` -> ``pipeline/``, ``cifar_tfx.components`` -> ``components/``,
``cifar_tfx.trainer`` -> ``trainer/`` and ``cifar_tfx.kubeflow`` -> ``kubeflow/``.
Nothing here imports TensorFlow; modules that need it import it themselves.
"""

__version__ = "0.1.0"
