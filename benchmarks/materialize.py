"""Materialised transformed examples versus the Transform graph applied in the Trainer's input.

    .venv/bin/python -m benchmarks.materialize [--images 60000]

(a) what ``Transform(materialize=True)`` would hand the Trainer: TFRecords of
    ``image_xf`` (3,072 float32) + label, parsed per batch;
(b) what the pipeline does: TFRecords of PNG examples, parsed, then the
    tf.Transform layer (decode + normalise) per batch.
Prints the bytes on disk and the input pipeline's images/s over one pass
(no model, batch 128, this machine), plus the time to write (a).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=60_000)
    args = parser.parse_args()

    import tensorflow as tf
    import tensorflow_transform as tft

    from cifar_tfx.trainer.preprocessing import IMAGE_XF, LABEL_XF
    from benchmarks.transform_fixtures import build_transform_output, write_split

    batch = 128
    with tempfile.TemporaryDirectory() as tmp:
        raw_file = write_split(os.path.join(tmp, "raw", "data.gz"), args.images, seed=5)
        tft_output = tft.TFTransformOutput(build_transform_output(
            write_split(os.path.join(tmp, "stats.gz"), 2000, seed=6), os.path.join(tmp, "tft")))
        layer = tft_output.transform_features_layer()
        spec = tft_output.raw_feature_spec()

        def transformed(serialized):
            out = layer(tf.io.parse_example(serialized, spec))
            return out[IMAGE_XF], out[LABEL_XF]

        raw_ds = (tf.data.TFRecordDataset([raw_file], compression_type="GZIP").batch(batch)
                  .map(transformed, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))

        # (a) write materialised float examples once (what Transform would do in Beam).
        start = time.perf_counter()
        os.makedirs(os.path.join(tmp, "mat"))
        mat_file = os.path.join(tmp, "mat", "data.gz")
        with tf.io.TFRecordWriter(mat_file, options="GZIP") as writer:
            for images, labels in raw_ds:
                for image, label in zip(images.numpy(), labels.numpy()):
                    example = tf.train.Example(features=tf.train.Features(feature={
                        IMAGE_XF: tf.train.Feature(float_list=tf.train.FloatList(value=image.reshape(-1))),
                        LABEL_XF: tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}))
                    writer.write(example.SerializeToString())
        write_seconds = time.perf_counter() - start
        mat_spec = {IMAGE_XF: tf.io.FixedLenFeature([32, 32, 3], tf.float32),
                    LABEL_XF: tf.io.FixedLenFeature([], tf.int64)}

        def parse_materialised(serialized):
            out = tf.io.parse_example(serialized, mat_spec)
            return out[IMAGE_XF], out[LABEL_XF]

        mat_ds = (tf.data.TFRecordDataset([mat_file], compression_type="GZIP").batch(batch)
                  .map(parse_materialised, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
        for name, dataset, folder in (("transform in the Trainer (PNG + tft layer)", raw_ds, "raw"),
                                      ("materialised float examples", mat_ds, "mat")):
            start = time.perf_counter()
            count = sum(int(labels.shape[0]) for _, labels in dataset)
            seconds = time.perf_counter() - start
            print(f"{name}: {count / seconds:,.0f} img/s, {folder_bytes(os.path.join(tmp, folder)) / 1e6:,.1f} MB on disk")
        print(f"writing the materialised copy took {write_seconds:.1f} s here (Transform would do it in Beam)")


if __name__ == "__main__":
    main()
