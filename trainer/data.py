"""tf.data input pipelines: TFRecords of raw Examples -> Transform graph -> (augmented) batches."""

from __future__ import annotations

from typing import Callable, Iterable, List, Optional, Tuple

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


def make_dataset(files: List[str], tft_output, batch_size: int, training: bool, hparams: HParams) -> tf.data.Dataset:
    """Batches of ``(image_xf [B, H, W, C] float32, label [B] int64)``.

    Training: :func:`training_batches` of :func:`cached_examples` (a run that trains more than once on
    the same records, e.g. in phases, builds those two itself and shares the cache). Evaluation: one
    pass, in file order, untouched.
    """
    if training:
        return training_batches(cached_examples(files, tft_output), batch_size, hparams)
    dataset = _records(files).batch(batch_size).map(_transform_fn(tft_output), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def cached_examples(files: List[str], tft_output, limit: Optional[int] = None) -> tf.data.Dataset:
    """``(image_xf [H, W, C], label)`` pairs, decoded and normalised by the Transform graph once, then
    cached in memory (decoding PNGs every epoch cost CPU the network needs).

    The cache belongs to the returned dataset: every pipeline built on it, and every iterator of those,
    reads one copy once a pass has completed. A run's small-crop and whole-image phases share it.
    ``limit`` keeps only the first records (the depth probe's small set).
    """
    batches = _records(files, limit).batch(TRANSFORM_BATCH)
    return batches.map(_transform_fn(tft_output), num_parallel_calls=tf.data.AUTOTUNE).unbatch().cache()


def training_batches(examples: tf.data.Dataset, batch_size: int, hparams: HParams,
                     crop_size: Optional[int] = None) -> tf.data.Dataset:
    """``examples`` (:func:`cached_examples`) shuffled, repeated forever, in whole batches, augmented;
    with ``crop_size``, random windows of that many pixels of the augmented images (:func:`small_crops`)."""
    def augment(images: tf.Tensor, labels: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        images = augment_batch(images, hparams.crop_padding, hparams.flip, hparams.cutout_size)
        return (small_crops(images, crop_size) if crop_size else images), labels

    dataset = (examples.shuffle(hparams.shuffle_buffer, reshuffle_each_iteration=True).repeat()
               .batch(batch_size, drop_remainder=True).map(augment, num_parallel_calls=tf.data.AUTOTUNE))
    return dataset.prefetch(tf.data.AUTOTUNE)


def _records(files: List[str], limit: Optional[int] = None) -> tf.data.Dataset:
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP", num_parallel_reads=tf.data.AUTOTUNE)
    return dataset.take(limit) if limit is not None else dataset


def _transform_fn(tft_output) -> Callable[[tf.Tensor], Tuple[tf.Tensor, tf.Tensor]]:
    """Serialized raw Examples -> ``(image_xf, label_xf)`` through the Transform graph."""
    tft_layer = tft_output.transform_features_layer()
    feature_spec = tft_output.raw_feature_spec()

    def transform(serialized: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        transformed = tft_layer(tf.io.parse_example(serialized, feature_spec))
        return transformed[IMAGE_XF], transformed[LABEL_XF]

    return transform
