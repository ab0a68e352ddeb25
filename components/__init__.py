"""Custom TFX components of the CIFAR pipeline (imported as ``cifar_tfx.components``)."""
