"""The networks, built with ``tf_keras`` (Keras 2): :func:`build_network` picks one from ``HParams``.

CIFAR ResNet-(6n+2) (He et al. 2015, §4.2), the recipe's: 3x3 conv stem with 16 filters; three
stages of n basic blocks at 16, 32 and 64 filters (``width`` times these in a wider variant, outside
the recipe); the first block of stages 2 and 3 halves the map with stride 2 and uses a 1x1 stride-2
projection shortcut; global average pooling; a 10-way softmax.

ResNet-9 (Myrtle's "How to train your ResNet", 2018), outside the recipe: the same stem, then three
stages that each convolve and halve the map with a 2x2 max-pool (32, 64 and 128 filters), the first and
the last followed by a residual block of two convolutions; global max pooling; logits scaled by 1/8.

Airbench-shaped (the network of airbench94, Jordan 2024, "94% on CIFAR-10 in 3.29 seconds"), outside the
recipe: a 24-filter stem, then three stages of two convolutions each (16, 64 and 64 filters x width; width 4
is airbench94's 64/256/256), the first convolution of each stage followed by a 2x2 max-pool, no shortcuts;
global max pooling; logits scaled by 1/9. Only the shape is airbench's: it trains with this project's recipe.

All: He-normal initialisation, L2 weight decay on conv kernels, the softmax computed in float32
whatever the compute precision.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import numpy as np
import tensorflow as tf
import tf_keras as keras

from cifar_tfx.trainer.hparams import HParams

STAGE_FILTERS = (16, 32, 64)
RESNET9_STAGE_FILTERS = (32, 64, 128)
RESNET9_RESIDUAL_STAGES = (0, 2)  # the stages followed by a residual block
RESNET9_LOGIT_SCALE = 0.125  # Myrtle's; without it the 10-minute validation run lost 9 points (BENCHMARKS.md)
AIRBENCH_STEM_FILTERS = 24  # airbench94's whitening layer: 12 patch directions, both signs
AIRBENCH_STAGE_FILTERS = (16, 64, 64)  # x width; width 4: airbench94's 64/256/256
AIRBENCH_LOGIT_SCALE = 1.0 / 9.0  # airbench94's


LayerSource = Callable[[str, Callable[[], keras.layers.Layer]], keras.layers.Layer]


def _conv(layer: LayerSource, filters: int, kernel: int, stride: int, weight_decay: float, name: str):
    return layer(name, lambda: keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False,
        kernel_initializer="he_normal", kernel_regularizer=keras.regularizers.l2(weight_decay), name=name))


def _stem(layer: LayerSource, filters: int, weight_decay: float, kernel: Optional[np.ndarray]):
    if kernel is None:
        return _conv(layer, filters, 3, 1, weight_decay, "stem_conv")
    if kernel.shape[-1] != filters:
        raise ValueError(f"a fixed stem kernel of {kernel.shape[-1]} filters for a stem of {filters}")
    return layer("stem_conv", lambda: keras.layers.Conv2D(
        filters, 3, padding="same", use_bias=False, kernel_initializer=keras.initializers.Constant(kernel),
        trainable=False, name="stem_conv"))


def _layer_source(weights_from: Optional[keras.Model]) -> LayerSource:
    """New layers, or those of ``weights_from`` by name (a copy for another input size shares its weights)."""
    def layer(name: str, make: Callable[[], keras.layers.Layer]) -> keras.layers.Layer:
        return weights_from.get_layer(name) if weights_from is not None else make()
    return layer


def _stem_block(layer: LayerSource, inputs, filters: int, weight_decay: float, kernel: Optional[np.ndarray]):
    x = _stem(layer, filters, weight_decay, kernel)(inputs)
    x = _bn(layer, "stem_bn")(x)
    return keras.layers.ReLU(name="stem_relu")(x)


def _bn(layer: LayerSource, name: str, scale: str = "ones"):
    return layer(name, lambda: keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, gamma_initializer=scale,
                                                               name=name))


def _basic_block(layer: LayerSource, x, filters: int, stride: int, weight_decay: float, name: str,
                 zero_init_residual: bool):
    shortcut = x
    y = _conv(layer, filters, 3, stride, weight_decay, f"{name}_conv1")(x)
    y = _bn(layer, f"{name}_bn1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv(layer, filters, 3, 1, weight_decay, f"{name}_conv2")(y)
    y = _bn(layer, f"{name}_bn2", "zeros" if zero_init_residual else "ones")(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = _conv(layer, filters, 1, stride, weight_decay, f"{name}_proj")(shortcut)
        shortcut = _bn(layer, f"{name}_proj_bn")(shortcut)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def build_resnet(depth: int, input_shape: Tuple[int, int, int], num_classes: int,
                 weight_decay: float, zero_init_residual: bool = False,
                 weights_from: Optional[keras.Model] = None, width: int = 1,
                 stem_kernel: Optional[np.ndarray] = None) -> keras.Model:
    """ResNet-``depth`` for ``input_shape`` images; ``depth`` must be 6n+2 (values from ``HParams``
    and the ``DatasetSpec``). ``zero_init_residual``: each block's second BatchNorm starts with scale 0,
    so the block starts as its shortcut. ``weights_from``: a ResNet of the same depth built by this
    function whose layers (and so weights) this one reuses, e.g. the same network for smaller crops.
    ``width``: every stage (and the stem) has ``width`` times the recipe's filters. ``stem_kernel``: a
    fixed ``[3, 3, C, 16 x width]`` kernel for the stem (not trained, no weight decay; see ``whitening``)."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n+2 (20, 32, 44, 56, 110, ...), got {depth}")
    layer = _layer_source(weights_from)
    blocks = (depth - 2) // 6
    inputs = keras.Input(shape=input_shape, name="image")
    x = _stem_block(layer, inputs, width * STAGE_FILTERS[0], weight_decay, stem_kernel)
    for stage, filters in enumerate(STAGE_FILTERS):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(layer, x, width * filters, stride, weight_decay, f"stage{stage + 1}_block{block + 1}",
                             zero_init_residual)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    logits = layer("logits", lambda: keras.layers.Dense(num_classes, kernel_initializer="he_normal", name="logits"))(x)
    probabilities = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    return keras.Model(inputs, probabilities, name=f"resnet{depth}")


def _conv_bn_relu(layer: LayerSource, x, filters: int, weight_decay: float, name: str, pool: bool = False,
                  scale: str = "ones"):
    x = _conv(layer, filters, 3, 1, weight_decay, f"{name}_conv")(x)
    if pool:
        x = keras.layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    x = _bn(layer, f"{name}_bn", scale)(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def build_resnet9(input_shape: Tuple[int, int, int], num_classes: int, weight_decay: float,
                  zero_init_residual: bool = False, weights_from: Optional[keras.Model] = None, width: int = 1,
                  stem_kernel: Optional[np.ndarray] = None) -> keras.Model:
    """ResNet-9 for ``input_shape`` images (sides of 8 pixels or more; each pool halves them, rounding down);
    the arguments mean what they mean for :func:`build_resnet`. ``zero_init_residual`` starts each residual
    block's second BatchNorm at 0."""
    layer = _layer_source(weights_from)
    inputs = keras.Input(shape=input_shape, name="image")
    x = _stem_block(layer, inputs, width * STAGE_FILTERS[0], weight_decay, stem_kernel)
    for stage, filters in enumerate(RESNET9_STAGE_FILTERS):
        name = f"stage{stage + 1}"
        x = _conv_bn_relu(layer, x, width * filters, weight_decay, name, pool=True)
        if stage in RESNET9_RESIDUAL_STAGES:
            y = _conv_bn_relu(layer, x, width * filters, weight_decay, f"{name}_res1")
            y = _conv_bn_relu(layer, y, width * filters, weight_decay, f"{name}_res2",
                              scale="zeros" if zero_init_residual else "ones")
            x = keras.layers.Add(name=f"{name}_add")([x, y])
    x = keras.layers.GlobalMaxPooling2D(name="pool")(x)
    logits = layer("logits", lambda: keras.layers.Dense(num_classes, kernel_initializer="he_normal", name="logits"))(x)
    logits = keras.layers.Rescaling(RESNET9_LOGIT_SCALE, name="logit_scale")(logits)
    probabilities = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    return keras.Model(inputs, probabilities, name="resnet9")


def build_airbench(input_shape: Tuple[int, int, int], num_classes: int, weight_decay: float,
                   weights_from: Optional[keras.Model] = None, width: int = 4,
                   stem_kernel: Optional[np.ndarray] = None) -> keras.Model:
    """The airbench-shaped network for ``input_shape`` images (sides of 8 pixels or more); the arguments
    mean what they mean for :func:`build_resnet`, except that the stem always has
    :data:`AIRBENCH_STEM_FILTERS` filters (and there are no residual blocks to zero-initialise)."""
    layer = _layer_source(weights_from)
    inputs = keras.Input(shape=input_shape, name="image")
    x = _stem_block(layer, inputs, AIRBENCH_STEM_FILTERS, weight_decay, stem_kernel)
    for stage, filters in enumerate(AIRBENCH_STAGE_FILTERS):
        name = f"stage{stage + 1}"
        x = _conv_bn_relu(layer, x, width * filters, weight_decay, f"{name}_a", pool=True)
        x = _conv_bn_relu(layer, x, width * filters, weight_decay, f"{name}_b")
    x = keras.layers.GlobalMaxPooling2D(name="pool")(x)
    logits = layer("logits", lambda: keras.layers.Dense(num_classes, kernel_initializer="he_normal", name="logits"))(x)
    logits = keras.layers.Rescaling(AIRBENCH_LOGIT_SCALE, name="logit_scale")(logits)
    probabilities = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(logits)
    return keras.Model(inputs, probabilities, name="airbench")


def stem_filters(hparams: HParams) -> int:
    """Filters of the stem of the network ``hparams`` names (what a whitened stem's kernel must have)."""
    if hparams.architecture == "airbench":
        return AIRBENCH_STEM_FILTERS
    return hparams.width * STAGE_FILTERS[0]


def build_network(hparams: HParams, input_shape: Tuple[int, int, int], num_classes: int,
                  weights_from: Optional[keras.Model] = None, stem_kernel: Optional[np.ndarray] = None) -> keras.Model:
    """The network ``hparams`` names (``architecture``, ``depth``, ``width``, ...) for ``input_shape`` images."""
    common = dict(weight_decay=hparams.weight_decay, weights_from=weights_from, width=hparams.width,
                  stem_kernel=stem_kernel)
    if hparams.architecture == "airbench":
        return build_airbench(input_shape, num_classes, **common)
    residual = dict(common, zero_init_residual=hparams.zero_init_residual)
    if hparams.architecture == "resnet9":
        return build_resnet9(input_shape, num_classes, **residual)
    return build_resnet(hparams.depth, input_shape, num_classes, **residual)


def shifted(images: tf.Tensor, pixels: int) -> tf.Tensor:
    """``[B, H, W, C]`` images moved ``pixels`` down and right (negative: up and left), zero-filled.

    Zero is the training mean after normalisation, what the training crop pads with.
    """
    if pixels == 0:
        return images
    size = abs(pixels)
    padded = tf.pad(images, [[0, 0], [size, size], [size, size], [0, 0]])
    start = size - pixels
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    return padded[:, start:start + height, start:start + width, :]


def prediction_views(test_time_flip: bool, test_time_shift: int = 0) -> Tuple[Tuple[bool, int], ...]:
    """``(mirrored, shift)`` of every view a prediction averages: the image itself first."""
    shifts = (0, test_time_shift, -test_time_shift) if test_time_shift else (0,)
    mirrors = (False, True) if test_time_flip else (False,)
    return tuple((mirrored, shift) for mirrored in mirrors for shift in shifts)


def predict_probabilities(model: keras.Model, images: tf.Tensor, test_time_flip: bool,
                          test_time_shift: int = 0) -> tf.Tensor:
    """``model``'s float32 class probabilities for ``[B, H, W, C]`` images, as served.

    The mean over :func:`prediction_views`: with ``test_time_flip`` the left-right mirror too,
    with ``test_time_shift`` the image (and its mirror) moved that many pixels diagonally
    both ways. Training flips and crops with padding, so every view is in-distribution.
    """
    views = prediction_views(test_time_flip, test_time_shift)
    if len(views) == 1:
        return tf.cast(model(images, training=False), tf.float32)
    # The views run one after another through a single copy of the network in the graph (map_fn), not one
    # copy per view: the export traces, and every loader restores, a sixth of the graph. One view at a
    # time (parallel_iterations=1) keeps the memory of a single batch.
    stacked = tf.stack([shifted(tf.reverse(images, axis=[2]) if mirrored else images, shift)
                        for mirrored, shift in views], axis=0)
    num_classes = model.output_shape[-1]
    per_view = tf.map_fn(lambda view: tf.cast(model(view, training=False), tf.float32), stacked,
                         fn_output_signature=tf.TensorSpec([None, num_classes], tf.float32), parallel_iterations=1)
    return tf.reduce_mean(per_view, axis=0)
