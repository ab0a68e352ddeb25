"""Seconds to export the serving SavedModel and to load it back, and the memory of one served batch.

    .venv/bin/python -m benchmarks.export_time [--depth 20] [--views-shift 2] [--batch 1000]

A ResNet-``depth`` (untrained: the time does not depend on the weights) with test-time flip and
shift, a Transform graph from 500 synthetic images; ``export_saved_model`` with its warm-up
requests, then ``tf.saved_model.load`` of the result, then one ``serving_images`` call on
``--batch`` images, with the process's peak RSS before and after that call.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def _peak_mib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--views-shift", type=int, default=2, help="test-time shift (0: flip only)")
    parser.add_argument("--batch", type=int, default=1000, help="images in the one served batch")
    args = parser.parse_args()

    import tensorflow as tf
    import tensorflow_transform as tft

    from benchmarks.transform_fixtures import build_transform_output, write_split
    from cifar_tfx.data.datasets import CIFAR10
    from cifar_tfx.data.synth import make_examples
    from cifar_tfx.example_format import encode_png
    from cifar_tfx.trainer.export import export_saved_model
    from cifar_tfx.trainer.hparams import profile_for_dataset, with_overrides
    from cifar_tfx.trainer.runtime import detect_cpu_bf16, resolve_runtime
    from cifar_tfx.trainer.train import apply_precision, build_and_compile

    hparams = with_overrides(profile_for_dataset("budget", CIFAR10), depth=args.depth,
                             test_time_shift=args.views_shift)
    runtime = resolve_runtime(hparams, 0, cpu_bf16=detect_cpu_bf16())
    apply_precision(runtime)
    with tempfile.TemporaryDirectory() as tmp:
        train_file = write_split(os.path.join(tmp, "train.gz"), 500, seed=1)
        tft_output = tft.TFTransformOutput(build_transform_output(train_file, os.path.join(tmp, "tft")))
        model = build_and_compile(hparams, CIFAR10, runtime)
        started = time.perf_counter()
        export_saved_model(model, tft_output, CIFAR10.class_names, os.path.join(tmp, "export"),
                           warmup_image_shape=(32, 32, 3), test_time_flip=True, test_time_shift=args.views_shift)
        exported = time.perf_counter() - started
        started = time.perf_counter()
        serve = tf.saved_model.load(os.path.join(tmp, "export")).signatures["serving_images"]
        loaded = time.perf_counter() - started
        images, _ = make_examples(args.batch, seed=3)
        encoded = tf.constant([encode_png(image) for image in images])
        before = _peak_mib()
        serve(images=encoded)
        print(f"ResNet-{args.depth}, {2 * (3 if args.views_shift else 1)} views, {runtime.precision}: export "
              f"{exported:.1f} s, load {loaded:.1f} s; peak RSS {before:,} MiB before and {_peak_mib():,} MiB "
              f"after serving {args.batch:,} images")


if __name__ == "__main__":
    main()
