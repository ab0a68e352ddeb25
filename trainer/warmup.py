"""TF Serving warm-up requests written next to each exported model.

TF Serving replays ``assets.extra/tf_serving_warmup_requests`` (a TFRecord file of
``PredictionLog`` protos) when it loads a version, before the version takes traffic,
so the first real request does not pay for graph initialisation. Each signature gets
requests at batch sizes 1 and ``batch`` so that both shapes are traced.
"""

from __future__ import annotations

import os
from typing import List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from cifar_tfx.example_format import encode_png, serialize_batch
from cifar_tfx.model_contract import EXAMPLES_SIGNATURE, IMAGES_SIGNATURE, SIGNATURE_INPUTS, WARMUP_DIR, WARMUP_FILE



def warmup_images(image_shape: Tuple[int, int, int], count: int) -> np.ndarray:
    """``count`` deterministic [H, W, C] uint8 images (gradients: every decoder path runs)."""
    height, width, channels = image_shape
    ramp = (np.arange(height * width * channels) % 256).astype(np.uint8).reshape(height, width, channels)
    return np.stack([np.roll(ramp, shift, axis=0) for shift in range(count)])


def warmup_logs(image_shape: Tuple[int, int, int], batch_sizes: Sequence[int] = (1, 8)) -> List[object]:
    """``PredictionLog`` protos for both signatures at each batch size."""
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    logs = []
    for size in batch_sizes:
        images = warmup_images(image_shape, size)
        payloads = {IMAGES_SIGNATURE: [encode_png(image) for image in images],
                    EXAMPLES_SIGNATURE: list(serialize_batch(images, np.zeros(size, np.int64)))}
        for signature, input_name in SIGNATURE_INPUTS:
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = signature
            request.inputs[input_name].CopyFrom(tf.make_tensor_proto(payloads[signature], dtype=tf.string))
            logs.append(prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def write_warmup_requests(export_dir: str, image_shape: Tuple[int, int, int]) -> str:
    """Write the warm-up file into ``export_dir``; return its path."""
    folder = os.path.join(export_dir, WARMUP_DIR)
    tf.io.gfile.makedirs(folder)
    path = os.path.join(folder, WARMUP_FILE)
    with tf.io.TFRecordWriter(path) as writer:
        for log in warmup_logs(image_shape):
            writer.write(log.SerializeToString())
    return path
