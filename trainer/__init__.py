"""Model, augmentation, schedule and training loop (imported as ``cifar_tfx.trainer``)."""
