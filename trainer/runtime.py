"""Where and how training runs: precision, XLA and distribution, resolved from hparams + hardware."""

from __future__ import annotations

import dataclasses
from typing import List, Sequence

from cifar_tfx.trainer.hparams import HParams


@dataclasses.dataclass(frozen=True)
class Runtime:
    """Resolved runtime choices of one training run."""

    precision: str   # keras mixed-precision policy name
    xla: bool        # jit_compile the train step
    mirrored: bool   # MirroredStrategy over the visible GPUs (or the CPU when none)
    gpus: int


def resolve_runtime(hparams: HParams, gpus: int, cpu_bf16: bool = False) -> Runtime:
    """Apply the ``auto`` rules.

    GPUs: mixed_float16 and XLA, MirroredStrategy with more than one GPU. CPUs:
    no XLA (it made CPU training 4-5x slower here); mixed_bfloat16 when the CPU
    has native bf16 (``cpu_bf16``), since a 3-minute budgeted ResNet-20 run reached
    a higher test accuracy with it than float32 (BENCHMARKS.md); float32 otherwise.
    """
    precision = hparams.precision
    if precision == "auto":
        precision = "mixed_float16" if gpus else ("mixed_bfloat16" if cpu_bf16 else "float32")
    xla = hparams.xla == "on" or (hparams.xla == "auto" and gpus > 0)
    mirrored = hparams.distribute == "on" or (hparams.distribute == "auto" and gpus > 1)
    return Runtime(precision=precision, xla=xla, mirrored=mirrored, gpus=gpus)


class MissingGpuError(RuntimeError):
    """The deployment asked for GPUs that TensorFlow does not see."""


def visible_devices() -> List[str]:
    """Names of the physical devices TensorFlow sees (``/physical_device:GPU:0``, ...)."""
    import tensorflow as tf

    return [device.name for device in tf.config.list_physical_devices()]


def detect_gpus() -> int:
    """Number of GPUs TensorFlow sees."""
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def check_gpus(required: int, devices: Sequence[str]) -> str:
    """The line saying which devices TensorFlow sees; :class:`MissingGpuError` when fewer GPUs
    than ``required`` are among them (a GPU task must not train on the CPU without a word)."""
    gpus = [name for name in devices if ":GPU:" in name]
    line = f"devices: TensorFlow sees {len(gpus)} GPU(s) {gpus or ''}".rstrip() + \
        f" and {len(devices) - len(gpus)} other device(s)"
    if len(gpus) < required:
        raise MissingGpuError(
            f"this task asked for {required} GPU(s) but TensorFlow sees {len(gpus)}: the node has no GPU or "
            "driver, or the image was built without CUDA (WITH_CUDA=0). Compile with --allow-cpu-fallback "
            "to train on the CPU instead")
    return line


def detect_cpu_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU advertises AVX512_BF16 or AMX-BF16 (Linux ``/proc/cpuinfo`` flags)."""
    try:
        with open(cpuinfo) as handle:
            flags = next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def make_strategy(runtime: Runtime):
    """MirroredStrategy when asked for, else the default (single-device) strategy."""
    import tensorflow as tf

    if runtime.mirrored:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
