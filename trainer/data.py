"""tf.data input pipelines: TFRecords of raw Examples -> Transform graph -> (augmented) batches."""

from __future__ import annotations

from typing import Iterable, List, Optional, Tuple

import tensorflow as tf

from cifar_tfx.trainer.augment import augment_batch, small_crops
from cifar_tfx.trainer.hparams import HParams
from cifar_tfx.trainer.preprocessing import IMAGE_XF, LABEL_XF

TRANSFORM_BATCH = 256  # examples the Transform graph is applied to at once, before the cache (throughput only)


def expand_patterns(patterns: Iterable[str]) -> List[str]:
    """Files matching any of ``patterns`` (TFX passes split folders as globs)."""
    files = sorted({f for pattern in patterns for f in tf.io.gfile.glob(pattern)})
    if not files:
        raise FileNotFoundError(f"no files match {list(patterns)}")
    return files

def count_records(files: List[str]) -> int:
    """Number of records in gzip TFRecord ``files``."""
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))

def make_dataset(files: List[str], tft_output, batch_size: int, training: bool,
                 hparams: HParams, limit: Optional[int] = None, crop_size: Optional[int] = None) -> tf.data.Dataset:
    """Batches of ``(image_xf [B, H, W, C] float32, label [B] int64)``.

    Training: decoded and normalised once, cached in memory *after* the Transform
    graph (decoding PNGs every epoch cost CPU the network needs), shuffled, repeated
    forever, whole batches only, augmented. Evaluation: one pass, in file order,
    untouched. ``limit`` keeps only the first records (the depth probe's small set). ``crop_size``: training
    batches are then random windows of that many pixels of the augmented images (:func:`small_crops`).
    """
    tft_layer = tft_output.transform_features_layer()
    feature_spec = tft_output.raw_feature_spec()

    def transform(serialized: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        features = tf.io.parse_example(serialized, feature_spec)
        transformed = tft_layer(features)
        return transformed[IMAGE_XF], transformed[LABEL_XF]

    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP", num_parallel_reads=tf.data.AUTOTUNE)
    if limit is not None:
        dataset = dataset.take(limit)
    if not training:
        dataset = dataset.batch(batch_size).map(transform, num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.prefetch(tf.data.AUTOTUNE)
    dataset = (dataset.batch(TRANSFORM_BATCH).map(transform, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
               .cache().shuffle(hparams.shuffle_buffer, reshuffle_each_iteration=True).repeat()
               .batch(batch_size, drop_remainder=True))
    def augment(images: tf.Tensor, labels: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        images = augment_batch(images, hparams.crop_padding, hparams.flip, hparams.cutout_size)
        return (small_crops(images, crop_size) if crop_size else images), labels

    dataset = dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
