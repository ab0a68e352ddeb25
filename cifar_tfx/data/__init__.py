"""Reading, verifying, downloading and synthesising CIFAR-format data (no TensorFlow)."""
