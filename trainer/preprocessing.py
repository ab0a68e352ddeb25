"""tf.Transform ``preprocessing_fn``: decode images and normalise them per channel.

The per-channel mean and standard deviation are computed by tf.Transform
analyzers in a full pass over the training split. Every image has the same
number of pixels, so the mean over examples of each image's channel means is the
exact pixel mean, and the same holds for the mean of squares.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import tensorflow as tf
import tensorflow_transform as tft

from cifar_tfx.example_format import IMAGE_KEY, LABEL_KEY

IMAGE_XF = "image_xf"
LABEL_XF = "label_xf"
_MIN_VARIANCE = 1e-6  # a constant channel would otherwise divide by zero


def decode_images(encoded: tf.Tensor, height: int, width: int, channels: int) -> tf.Tensor:
    """``[B]`` PNG/JPEG strings to ``[B, H, W, C]`` uint8; a wrong size fails with its shape."""

    def decode_one(data: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(data, channels=channels, expand_animations=False)
        return tf.ensure_shape(image, [height, width, channels])

    return tf.map_fn(decode_one, encoded, fn_output_signature=tf.TensorSpec([height, width, channels], tf.uint8))


def preprocessing_fn(inputs: Dict[str, tf.Tensor], custom_config: Optional[Dict[str, Any]] = None) -> Dict[str, tf.Tensor]:
    """Raw features (encoded ``image``, ``label``) to ``image_xf`` float32 and ``label_xf`` int64.

    ``custom_config`` carries the image shape (``height``, ``width``, ``channels``) of the
    dataset's ``DatasetSpec``.
    """
    config = custom_config or {}
    missing = [key for key in ("height", "width", "channels") if key not in config]
    if missing:
        raise ValueError(f"Transform custom_config lacks the image shape {missing} (the pipeline passes the dataset's)")
    height, width, channels = (int(config[key]) for key in ("height", "width", "channels"))
    encoded = tf.reshape(inputs[IMAGE_KEY], [-1])
    pixels = tf.cast(decode_images(encoded, height, width, channels), tf.float32)
    mean = tft.mean(tf.reduce_mean(pixels, axis=[1, 2]), reduce_instance_dims=False)
    mean_of_squares = tft.mean(tf.reduce_mean(tf.square(pixels), axis=[1, 2]), reduce_instance_dims=False)
    std = tf.sqrt(tf.maximum(mean_of_squares - tf.square(mean), _MIN_VARIANCE))
    outputs = {IMAGE_XF: (pixels - mean) / std}
    if LABEL_KEY in inputs:
        outputs[LABEL_XF] = tf.reshape(inputs[LABEL_KEY], [-1])
    return outputs
