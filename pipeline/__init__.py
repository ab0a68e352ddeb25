"""Pipeline definition and its runners (imported as ``cifar_tfx.pipeline``)."""
