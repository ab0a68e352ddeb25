"""The ``tf.train.Example`` layout of one image: feature keys and codec, shared by every layer.

The image is stored PNG-encoded (lossless, so pixel-exact), not as raw bytes,
because the Transform graph then starts from *encoded image bytes*: the same
graph that decodes training examples decodes the PNG or JPEG bytes a REST
client sends to the ``serving_images`` signature, so training and serving share
one decode-and-normalise path with no second copy of it. The cost is small: a
32x32 PNG decodes in microseconds, and the files are about the size of the raw
pixels (CIFAR barely compresses; the TFRecords are gzip-compressed anyway).
The shape travels with each example (``height``, ``width``, ``channels``) so
the schema can pin it and a mismatched dataset is caught by ExampleValidator
before anything trains on it.
"""

from __future__ import annotations

import io
from typing import Iterator

import numpy as np
from PIL import Image

IMAGE_KEY = "image"
LABEL_KEY = "label"
HEIGHT_KEY = "height"
WIDTH_KEY = "width"
CHANNELS_KEY = "channels"
# zlib level 1: 25 % less encoding time than Pillow's default 6, and no larger on CIFAR-10 (its 32x32
# photographs barely compress at any level; BENCHMARKS.md, "Ingestion").
PNG_COMPRESS_LEVEL = 1


def encode_png(image: np.ndarray) -> bytes:
    """Lossless PNG bytes of one [H, W, C] uint8 image (C = 1 or 3)."""
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def serialize_batch(images: np.ndarray, labels: np.ndarray) -> Iterator[bytes]:
    """Yield one serialized ``tf.train.Example`` per image of a [N, H, W, C] uint8 batch."""
    from tensorflow.core.example import example_pb2  # protobuf only; no TF runtime work

    _, height, width, channels = images.shape
    for image, label in zip(images, labels):
        example = example_pb2.Example()
        feature = example.features.feature
        feature[IMAGE_KEY].bytes_list.value.append(encode_png(image))
        feature[LABEL_KEY].int64_list.value.append(int(label))
        feature[HEIGHT_KEY].int64_list.value.append(height)
        feature[WIDTH_KEY].int64_list.value.append(width)
        feature[CHANNELS_KEY].int64_list.value.append(channels)
        yield example.SerializeToString()

