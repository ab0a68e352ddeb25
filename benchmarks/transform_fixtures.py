"""Small TFRecord splits plus a real tf.Transform output, built without running the pipeline.

Shared by the tests and the benchmarks (which time the Trainer and the export on them)."""

import os

import tensorflow as tf

from cifar_tfx.example_format import serialize_batch
from cifar_tfx.data.datasets import CIFAR10
from cifar_tfx.data.synth import make_examples


def write_split(path, count, seed):
    images, labels = make_examples(count, seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for record in serialize_batch(images, labels):
            writer.write(record)
    return path


def build_transform_output(train_file, out_dir, dataset=CIFAR10):
    """Run the project's preprocessing_fn analysis over ``train_file`` with tf.Transform on Beam."""
    import apache_beam as beam
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    from cifar_tfx import example_format as codec
    from cifar_tfx.trainer.preprocessing import preprocessing_fn

    spec = {codec.IMAGE_KEY: tf.io.FixedLenFeature([1], tf.string),
            codec.LABEL_KEY: tf.io.FixedLenFeature([1], tf.int64),
            codec.HEIGHT_KEY: tf.io.FixedLenFeature([1], tf.int64),
            codec.WIDTH_KEY: tf.io.FixedLenFeature([1], tf.int64),
            codec.CHANNELS_KEY: tf.io.FixedLenFeature([1], tf.int64)}
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    rows = []
    for record in tf.data.TFRecordDataset([train_file], compression_type="GZIP"):
        parsed = tf.io.parse_single_example(record, spec)
        rows.append({key: value.numpy() for key, value in parsed.items()})
    with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=os.path.join(out_dir, "tmp")):
        data = pipeline | beam.Create(rows, reshuffle=False)
        shape = {"height": dataset.height, "width": dataset.width, "channels": dataset.channels}
        transform_fn = (data, metadata) | tft_beam.AnalyzeDataset(
            lambda inputs: preprocessing_fn(inputs, custom_config=shape))
        _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
    from tensorflow_transform.tf_metadata import metadata_io  # raw metadata, as TFX's Transform writes it

    metadata_io.write_metadata(metadata, os.path.join(out_dir, "metadata"))
    return out_dir
