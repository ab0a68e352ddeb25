"""Trainer input pipeline + fit versus bare tf_keras ``model.fit`` on in-memory arrays.

    .venv/bin/python -m benchmarks.trainer_throughput [--depths 20 56] [--steps 40]

Both sides: the same ResNet, batch 128, float32, SGD, this machine, measured in
one process. The Trainer side reads gzip TFRecords of PNG examples, applies the
tf.Transform graph (decode + normalise) and the crop/flip/cutout augmentation in
tf.data; the bare side feeds pre-normalised float32 arrays from memory with no
augmentation. The ratio is Trainer images/s over bare images/s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def images_per_second(model, dataset, steps: int, batch: int, warmup: int = 5) -> float:
    model.fit(dataset, epochs=1, steps_per_epoch=warmup, verbose=0)
    start = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 56])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--images", type=int, default=5000)
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf
    import tensorflow_transform as tft

    from cifar_tfx.data.datasets import CIFAR10
    from cifar_tfx.data.synth import make_examples
    from cifar_tfx.trainer.data import make_dataset
    from cifar_tfx.trainer.hparams import FULL, with_overrides
    from cifar_tfx.trainer.runtime import resolve_runtime
    from cifar_tfx.trainer.train import build_and_compile
    from benchmarks.transform_fixtures import build_transform_output, write_split

    batch = 128
    hparams = with_overrides(FULL, batch_size=batch, shuffle_buffer=args.images)
    runtime = resolve_runtime(hparams, gpus=0)
    with tempfile.TemporaryDirectory() as tmp:
        train_file = write_split(os.path.join(tmp, "train.gz"), args.images, seed=1)
        tft_output = tft.TFTransformOutput(build_transform_output(train_file, os.path.join(tmp, "tft")))
        images, labels = make_examples(args.images, seed=1)
        pixels = images.astype(np.float32)
        arrays = ((pixels - pixels.mean((0, 1, 2))) / pixels.std((0, 1, 2)), labels.astype(np.int64))
        bare_ds = tf.data.Dataset.from_tensor_slices(arrays).shuffle(args.images).repeat().batch(batch)
        for depth in args.depths:
            hp = with_overrides(hparams, depth=depth)
            results = {}
            for name, dataset in (("bare", bare_ds), ("trainer", make_dataset([train_file], tft_output, batch, True, hp))):
                model = build_and_compile(hp, CIFAR10, runtime)
                results[name] = images_per_second(model, dataset, args.steps, batch)
            print(f"ResNet-{depth}: bare model.fit {results['bare']:,.0f} img/s, Trainer pipeline "
                  f"{results['trainer']:,.0f} img/s, ratio {results['trainer'] / results['bare']:.3f}")


if __name__ == "__main__":
    main()
