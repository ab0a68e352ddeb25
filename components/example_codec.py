"""The ``tf.train.Example`` layout of one image, shared by ExampleGen, Transform and the tests.

The image is stored as raw bytes: ``height * width * channels`` uint8 values in
height-width-channel order. Raw bytes rather than PNG because (1) a CIFAR image
barely compresses as PNG (3,072 raw bytes, roughly 2,300-2,900 as PNG), and the
TFRecords are gzip-compressed anyway; (2) decoding is one ``tf.io.decode_raw``
with no codec in the training input path; (3) a round trip is byte-exact by
construction. The shape travels with each example (``height``, ``width``,
``channels``) so the schema can pin it and a mismatched dataset is caught by
ExampleValidator before anything trains on it.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

IMAGE_KEY = "image"
LABEL_KEY = "label"
HEIGHT_KEY = "height"
WIDTH_KEY = "width"
CHANNELS_KEY = "channels"


def serialize_batch(images: np.ndarray, labels: np.ndarray) -> Iterator[bytes]:
    """Yield one serialized ``tf.train.Example`` per image of a [N, H, W, C] uint8 batch."""
    from tensorflow.core.example import example_pb2  # protobuf only; no TF runtime work

    _, height, width, channels = images.shape
    for image, label in zip(images, labels):
        example = example_pb2.Example()
        feature = example.features.feature
        feature[IMAGE_KEY].bytes_list.value.append(image.tobytes())
        feature[LABEL_KEY].int64_list.value.append(int(label))
        feature[HEIGHT_KEY].int64_list.value.append(height)
        feature[WIDTH_KEY].int64_list.value.append(width)
        feature[CHANNELS_KEY].int64_list.value.append(channels)
        yield example.SerializeToString()


def parse_example(serialized: bytes) -> tuple:
    """``(image [H, W, C] uint8, label int)`` of one serialized example (for tests and tools)."""
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example.FromString(serialized)
    feature = example.features.feature
    shape = tuple(int(feature[k].int64_list.value[0]) for k in (HEIGHT_KEY, WIDTH_KEY, CHANNELS_KEY))
    image = np.frombuffer(feature[IMAGE_KEY].bytes_list.value[0], dtype=np.uint8).reshape(shape)
    return image, int(feature[LABEL_KEY].int64_list.value[0])
