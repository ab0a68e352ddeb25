"""Where and how training runs: precision, XLA and distribution, resolved from hparams + hardware."""

from __future__ import annotations

import dataclasses

from cifar_tfx.trainer.hparams import HParams


@dataclasses.dataclass(frozen=True)
class Runtime:
    """Resolved runtime choices of one training run."""

    precision: str   # keras mixed-precision policy name
    xla: bool        # jit_compile the train step
    mirrored: bool   # MirroredStrategy over the visible GPUs (or the CPU when none)
    gpus: int


def resolve_runtime(hparams: HParams, gpus: int) -> Runtime:
    """Apply the ``auto`` rules: on GPUs mixed_float16 + XLA, MirroredStrategy with >1 GPU.

    On CPUs the defaults stay float32 without XLA (XLA made CPU training 4-5x slower
    here); ``mixed_bfloat16`` is offered for CPUs with AVX512_BF16 but not defaulted
    (see BENCHMARKS.md).
    """
    precision = hparams.precision
    if precision == "auto":
        precision = "mixed_float16" if gpus else "float32"
    xla = hparams.xla == "on" or (hparams.xla == "auto" and gpus > 0)
    mirrored = hparams.distribute == "on" or (hparams.distribute == "auto" and gpus > 1)
    return Runtime(precision=precision, xla=xla, mirrored=mirrored, gpus=gpus)


def detect_gpus() -> int:
    """Number of GPUs TensorFlow sees."""
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def make_strategy(runtime: Runtime):
    """MirroredStrategy when asked for, else the default (single-device) strategy."""
    import tensorflow as tf

    if runtime.mirrored:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
