"""Does ``mixed_bfloat16`` hold accuracy in a time-budgeted CPU run? float32 vs bf16, same budget.

    .venv/bin/python -m benchmarks.bf16_budget --data PATH/cifar-10-binary.tar.gz \
        [--depth 20] [--minutes 3]

Trains the same network on the same data for the same wall-clock budget (the
schedule drops at 1/2 and 3/4 of it) in each precision, one after the other in
one process, and prints steps, images/s and test accuracy.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=3.0)
    args = parser.parse_args()

    import tensorflow as tf
    import tensorflow_transform as tft
    import tf_keras as keras

    from cifar_tfx.example_format import serialize_batch
    from cifar_tfx.data.datasets import CIFAR10
    from cifar_tfx.data.reader import read_batches
    from cifar_tfx.trainer.hparams import FULL, with_overrides
    from cifar_tfx.trainer.train import train_model
    from benchmarks.transform_fixtures import build_transform_output

    _, batches = read_batches(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for split, parts in batches.items():
            files[split] = os.path.join(tmp, f"{split}.gz")
            with tf.io.TFRecordWriter(files[split], options="GZIP") as writer:
                for batch in parts:
                    for record in serialize_batch(batch.images, batch.labels):
                        writer.write(record)
        tft_output = tft.TFTransformOutput(build_transform_output(files["train"], os.path.join(tmp, "tft")))
        for precision in ("float32", "mixed_bfloat16"):
            hparams = with_overrides(FULL, depth=args.depth, time_budget_minutes=args.minutes,
                                     precision=precision, log_every_seconds=60)
            _, result = train_model(train_files=[files["train"]], eval_files=[files["test"]], tft_output=tft_output,
                                    hparams=hparams, dataset=CIFAR10, checkpoint_dir=os.path.join(tmp, precision),
                                    stream=io.StringIO())
            keras.mixed_precision.set_global_policy("float32")
            print(f"ResNet-{args.depth}, {args.minutes:g} min, {precision}: {result.steps_done} steps, "
                  f"{result.images_per_second:,.0f} img/s, test accuracy {result.eval_accuracy:.4f}")


if __name__ == "__main__":
    main()
