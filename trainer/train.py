"""The training run: build, resume, fit under the step schedule, checkpoint, evaluate.

Everything here is plain TensorFlow: the TFX ``run_fn`` only unpacks its
arguments and calls :func:`train_model` (then the export), and tests call these functions
directly with a tf.Transform output and a few TFRecord files.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, TextIO

import numpy as np
import tensorflow as tf
import tf_keras as keras

from cifar_tfx.data.datasets import DatasetSpec
from cifar_tfx.trainer.callbacks import EpochCheckpoint, ProgressLogger, StepScheduleController
from cifar_tfx.trainer.data import count_records, expand_patterns, make_dataset
from cifar_tfx.trainer.hparams import HParams
from cifar_tfx.trainer.model import build_resnet
from cifar_tfx.trainer.runtime import Runtime, detect_cpu_bf16, detect_gpus, make_strategy, resolve_runtime
from cifar_tfx.trainer.schedule import TrainingClock


@dataclasses.dataclass
class TrainResult:
    """What a training run did."""

    runtime: Runtime
    steps_done: int                 # optimizer steps in total, earlier attempts included
    resumed_from_step: int          # 0 for a fresh run
    elapsed_seconds: float          # training time, earlier attempts included
    images_per_second: float        # this attempt's training throughput
    learning_rates: List[float]     # per step of this attempt
    history: Dict[str, List[float]] = dataclasses.field(default_factory=dict)  # per epoch
    eval_accuracy: float = float("nan")
    eval_loss: float = float("nan")
    confusion: Optional[np.ndarray] = None  # [true class, predicted class] counts on the eval split


def apply_precision(runtime: Runtime) -> None:
    """Set the global Keras mixed-precision policy (must happen before the model is built)."""
    keras.mixed_precision.set_global_policy(runtime.precision)


def build_and_compile(hparams: HParams, dataset: DatasetSpec, runtime: Runtime) -> keras.Model:
    """ResNet-``depth`` with SGD+momentum, sparse cross-entropy and accuracy; XLA if asked."""
    model = build_resnet(hparams.depth, (dataset.height, dataset.width, dataset.channels),
                         dataset.num_classes, hparams.weight_decay)
    optimizer = keras.optimizers.SGD(learning_rate=tf.Variable(hparams.learning_rate, trainable=False,
                                                               dtype=tf.float32),
                                     momentum=hparams.momentum)
    if runtime.precision == "mixed_float16":
        optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  jit_compile=runtime.xla)
    return model


def confusion_matrix(model: keras.Model, dataset: tf.data.Dataset, num_classes: int) -> np.ndarray:
    """``[true, predicted]`` counts of ``model`` over ``dataset``."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    for images, labels in dataset:
        predicted = np.argmax(model(images, training=False).numpy(), axis=-1)
        np.add.at(matrix, (labels.numpy().astype(np.int64), predicted), 1)
    return matrix


def train_model(*, train_files: Sequence[str], eval_files: Sequence[str], tft_output, hparams: HParams,
                dataset: DatasetSpec, checkpoint_dir: str, log_dir: Optional[str] = None,
                clock: Callable[[], float] = time.monotonic, stream: Optional[TextIO] = None,
                gpus: Optional[int] = None):
    """Train (resuming from ``checkpoint_dir`` if it holds a checkpoint); return ``(model, TrainResult)``."""
    stream = stream or sys.stderr
    gpus = detect_gpus() if gpus is None else gpus
    runtime = resolve_runtime(hparams, gpus, cpu_bf16=not gpus and detect_cpu_bf16())
    apply_precision(runtime)
    train_files = expand_patterns(train_files)
    eval_files = expand_patterns(eval_files)
    train_examples = count_records(train_files)
    steps_per_epoch = max(1, train_examples // hparams.batch_size)
    planned = hparams.planned_steps(train_examples)

    strategy = make_strategy(runtime)
    with strategy.scope():
        model = build_and_compile(hparams, dataset, runtime)
        elapsed_var = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="elapsed_seconds")
        checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, elapsed_seconds=elapsed_var)
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=2)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).expect_partial()
    start_step = int(model.optimizer.iterations.numpy())
    budget = hparams.time_budget_minutes * 60.0 if hparams.time_budget_minutes is not None else None
    run_clock = TrainingClock(planned_steps=planned, budget_seconds=budget,
                              elapsed_before=float(elapsed_var.numpy()), clock=clock)
    if start_step:
        stream.write(f"resuming from {manager.latest_checkpoint} at step {start_step}, "
                     f"{run_clock.elapsed_before:.0f} s already trained\n")
    stream.write(f"training ResNet-{hparams.depth} on {train_examples} images, batch {hparams.batch_size}, "
                 f"{'budget %.1f min' % hparams.time_budget_minutes if budget else '%d steps' % planned}; "
                 f"precision {runtime.precision}, XLA {'on' if runtime.xla else 'off'}, "
                 f"{strategy.num_replicas_in_sync} replica(s)\n")

    def save() -> str:
        elapsed_var.assign(run_clock.elapsed())
        return manager.save(checkpoint_number=int(model.optimizer.iterations.numpy()))

    writer = tf.summary.create_file_writer(os.path.join(log_dir, "train")) if log_dir else None
    controller = StepScheduleController(run_clock, hparams.learning_rate, hparams.lr_drop_fractions,
                                        hparams.lr_drop_factors, writer)
    callbacks = [controller, ProgressLogger(run_clock, hparams.batch_size, hparams.log_every_seconds, stream),
                 EpochCheckpoint(save)]
    history: Dict[str, List[float]] = {}
    started = clock()
    if not run_clock.finished(start_step):
        epochs = (math.ceil(planned / steps_per_epoch) if planned else 10**6)
        train_ds = make_dataset(train_files, tft_output, hparams.batch_size, True, hparams)
        fit = model.fit(train_ds, epochs=epochs, initial_epoch=start_step // steps_per_epoch,
                        steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=0)
        history = {key: [float(v) for v in values] for key, values in fit.history.items()}
    save()
    steps_done = int(model.optimizer.iterations.numpy())
    seconds = clock() - started
    result = TrainResult(runtime=runtime, steps_done=steps_done, resumed_from_step=start_step,
                         elapsed_seconds=run_clock.elapsed(),
                         images_per_second=(steps_done - start_step) * hparams.batch_size / seconds if seconds > 0 else 0.0,
                         learning_rates=controller.rates, history=history)
    eval_ds = make_dataset(eval_files, tft_output, hparams.batch_size, False, hparams)
    result.eval_loss, result.eval_accuracy = (float(v) for v in model.evaluate(eval_ds, verbose=0))
    result.confusion = confusion_matrix(model, eval_ds, dataset.num_classes)
    stream.write(f"trained {steps_done} steps in {result.elapsed_seconds:.0f} s "
                 f"({result.images_per_second:,.0f} img/s); eval accuracy {result.eval_accuracy:.4f}\n")
    if writer is not None:
        writer.flush()
    return model, result
