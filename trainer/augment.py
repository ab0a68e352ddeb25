"""Training-split augmentation, vectorised over the batch: pad-and-crop, flip, cutout, small crops.

All three act on a whole ``[B, H, W, C]`` batch of *normalised* images with
per-image random parameters drawn as tensors, so no per-image Python or
``tf.map_fn`` loop runs (a per-image ``map_fn`` cost 30 % of throughput here).
Cutout sets its square to zero, which after normalisation is the dataset mean.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf


def crop_and_flip(images: tf.Tensor, padding: int, flip: bool, seed: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Zero-pad by ``padding``, take a random HxW crop and flip half the images left-right.

    Crop and flip are one gather: row and column indices per image, the column
    indices reversed for flipped images.
    """
    shape = tf.shape(images)
    batch, height, width = shape[0], images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
    offsets = tf.random.uniform([batch, 2], 0, 2 * padding + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(height)[None, :]
    cols = offsets[:, 1:] + tf.range(width)[None, :]
    if flip:
        flipped = tf.random.uniform([batch, 1]) < 0.5
        cols = tf.where(flipped, tf.reverse(cols, axis=[1]), cols)
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)


def cutout_mask(batch: tf.Tensor, height: int, width: int, size: int,
                centres: Optional[tf.Tensor] = None) -> tf.Tensor:
    """``[B, H, W, 1]`` float mask: 0 inside each image's square, 1 elsewhere.

    The square's centre is uniform over the image (``centres`` [B, 2] as (row, col)
    to fix it) and the square is clipped at the borders (DeVries & Taylor 2017).
    """
    if centres is None:
        centres = tf.stack([tf.random.uniform([batch], 0, height, dtype=tf.int32),
                            tf.random.uniform([batch], 0, width, dtype=tf.int32)], axis=1)
    low = centres - size // 2
    high = low + size
    rows = tf.range(height)[None, :]
    cols = tf.range(width)[None, :]
    in_rows = (rows >= low[:, :1]) & (rows < high[:, :1])
    in_cols = (cols >= low[:, 1:]) & (cols < high[:, 1:])
    inside = in_rows[:, :, None] & in_cols[:, None, :]
    return tf.cast(~inside, tf.float32)[..., None]


def augment_batch(images: tf.Tensor, padding: int, flip: bool, cutout_size: int) -> tf.Tensor:
    """The recipe's augmentation of one normalised training batch."""
    out = crop_and_flip(images, padding, flip) if padding or flip else images
    if cutout_size:
        mask = cutout_mask(tf.shape(out)[0], out.shape[1], out.shape[2], cutout_size)
        out = out * tf.cast(mask, out.dtype)
    return out


def small_crops(images: tf.Tensor, size: int) -> tf.Tensor:
    """A random ``size`` x ``size`` window of each image of a ``[B, H, W, C]`` batch, offsets drawn per image.

    Applied after :func:`augment_batch` in the small-crop phase of a run (``HParams.small_crop_fraction``):
    the network sees less of each image at the same scale, and a step costs about (size / H)^2 of a whole one.
    """
    height, width = images.shape[1], images.shape[2]
    if size > min(height, width):
        raise ValueError(f"small crops of {size} pixels do not fit {height}x{width} images")
    batch = tf.shape(images)[0]
    rows = tf.random.uniform([batch, 1], 0, height - size + 1, dtype=tf.int32) + tf.range(size)[None, :]
    cols = tf.random.uniform([batch, 1], 0, width - size + 1, dtype=tf.int32) + tf.range(size)[None, :]
    out = tf.gather(images, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)
