"""Latency of the exported ``serving_images`` signature versus the bare Keras model.

    .venv/bin/python -m benchmarks.serving_latency [--depth 56] [--repeats 30]

Same network weights, same machine, one process. The signature takes PNG bytes
and runs decode + Transform + network; the bare model takes the same images
already decoded and normalised (float32 arrays). Median milliseconds per call
at batch 1 and 128, and the ratio signature / bare.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def median_ms(call, repeats: int) -> float:
    call()  # trace / warm up
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--depth", type=int, default=56)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    import tensorflow as tf
    import tensorflow_transform as tft

    from cifar_tfx.example_format import encode_png
    from cifar_tfx.data.datasets import CIFAR10
    from cifar_tfx.data.synth import make_examples
    from cifar_tfx.trainer.export import export_saved_model
    from cifar_tfx.trainer.hparams import HParams
    from cifar_tfx.trainer.model import build_resnet
    from cifar_tfx.trainer.preprocessing import IMAGE_XF
    from benchmarks.transform_fixtures import build_transform_output, write_split

    with tempfile.TemporaryDirectory() as tmp:
        train = write_split(os.path.join(tmp, "train.gz"), 1000, seed=1)
        tft_output = tft.TFTransformOutput(build_transform_output(train, os.path.join(tmp, "tft")))
        model = build_resnet(args.depth, (CIFAR10.height, CIFAR10.width, CIFAR10.channels), CIFAR10.num_classes,
                             HParams().weight_decay)
        signature = tf.saved_model.load(export_saved_model(model, tft_output, CIFAR10.class_names,
                                                           os.path.join(tmp, "export"))).signatures["serving_images"]
        images, _ = make_examples(128, seed=2)
        png = [encode_png(image) for image in images]
        normalised = tft_output.transform_features_layer()({"image": tf.constant([[p] for p in png])})[IMAGE_XF]
        bare = tf.function(lambda x: model(x, training=False))
        for batch in (1, 128):
            png_batch = tf.constant(png[:batch])
            pixel_batch = tf.constant(normalised[:batch])
            served = median_ms(lambda b=png_batch: signature(images=b)["probabilities"].numpy(), args.repeats)
            direct = median_ms(lambda b=pixel_batch: bare(b).numpy(), args.repeats)
            print(f"ResNet-{args.depth} batch {batch}: serving_images {served:.2f} ms, bare Keras model "
                  f"{direct:.2f} ms, ratio {served / direct:.3f}")


if __name__ == "__main__":
    main()
