"""A short pipeline run on real Fashion-MNIST images (Debian package dataset-fashion-mnist).

Slow (about 2 minutes). 5,000 training and 1,000 test images cut from the real files, the
demo network (ResNet-8) for 4 epochs; the gate and this test ask for 60 % test accuracy,
six times chance (a run here reached 73.6 %).
"""

import os
import re

import numpy as np
import pytest
from archive_fixtures import idx_bytes

pytestmark = pytest.mark.slow

REAL = "/usr/share/datasets/fashion-mnist"
if not os.path.isdir(REAL):
    pytest.skip("apt package dataset-fashion-mnist is not installed (.ci/run installs it)", allow_module_level=True)

tf = pytest.importorskip("tensorflow")

from cifar_tfx.cli import main  # noqa: E402
from cifar_tfx.example_format import encode_png  # noqa: E402
from cifar_tfx.data.datasets import FASHION_MNIST  # noqa: E402
from cifar_tfx.data.idx import read_idx  # noqa: E402


def _subset(folder, train=5000, test=1000):
    os.makedirs(folder)
    for prefix, count in (("train", train), ("t10k", test)):
        images = read_idx(f"{REAL}/{prefix}-images-idx3-ubyte.gz", (28, 28))[:count]
        labels = read_idx(f"{REAL}/{prefix}-labels-idx1-ubyte.gz", ())[:count]
        with open(os.path.join(folder, f"{prefix}-images-idx3-ubyte"), "wb") as out:
            out.write(idx_bytes(images))
        with open(os.path.join(folder, f"{prefix}-labels-idx1-ubyte"), "wb") as out:
            out.write(idx_bytes(labels))
    return images, labels


def test_real_fashion_mnist_trains_gates_and_serves_grayscale_pngs(tmp_path, capsys):
    images, labels = _subset(str(tmp_path / "data"))
    code = main(["run", "--dataset", "fashion_mnist", "--data", str(tmp_path / "data"), "--profile", "demo",
                 "--epochs", "4", "--cutout-size", "8", "--min-accuracy", "0.6",
                 "--pipeline-root", str(tmp_path / "pipeline"), "--serving-dir", str(tmp_path / "serving")])
    out = capsys.readouterr().out
    assert code == 0, out
    accuracy = float(re.search(r"pushed: fashion_mnist version 1 -> .* \(test accuracy ([0-9.]+)\)", out).group(1))
    assert accuracy >= 0.6

    model = tf.saved_model.load(str(tmp_path / "serving" / "fashion_mnist" / "1"))
    pngs = [encode_png(image) for image in images[:200]]  # 28x28 single-channel PNGs, as a client sends
    result = model.signatures["serving_images"](images=tf.constant(pngs))
    assert result["probabilities"].shape == (200, 10)
    names = [name.decode() for name in result["class_name"].numpy()]
    assert set(names) <= set(FASHION_MNIST.class_names)
    assert np.mean(result["class_id"].numpy() == labels[:200]) >= 0.5
