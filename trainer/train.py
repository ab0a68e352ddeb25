"""The training run: build, resume, fit under the step schedule, checkpoint, evaluate.

Everything here is plain TensorFlow: the TFX ``run_fn`` only unpacks its
arguments and calls :func:`train_model` (then the export), and tests call these functions
directly with a tf.Transform output and a few TFRecord files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Callable, Dict, List, Optional, Sequence, TextIO

import numpy as np
import tensorflow as tf
import tf_keras as keras

from cifar_tfx import console
from cifar_tfx.data.datasets import DatasetSpec
from cifar_tfx.trainer.budget import PROBE_DEPTHS, DepthChoice, choose_depth
from cifar_tfx.trainer.callbacks import EpochCheckpoint, ProgressLogger, StepScheduleController
from cifar_tfx.trainer.data import count_records, expand_patterns, make_dataset
from cifar_tfx.trainer.hparams import HParams
from cifar_tfx.trainer.model import build_resnet, predict_probabilities
from cifar_tfx.trainer.runtime import Runtime, detect_cpu_bf16, detect_gpus, make_strategy, resolve_runtime
from cifar_tfx.trainer.schedule import TrainingClock


@dataclasses.dataclass
class TrainResult:
    """What a training run did."""

    runtime: Runtime
    steps_done: int                 # optimizer steps in total, earlier attempts included
    resumed_from_step: int          # 0 for a fresh run
    elapsed_seconds: float          # training time, earlier attempts included
    images_per_second: Optional[float]  # this attempt's training throughput; None if it trained no step
    learning_rates: List[float]     # per step of this attempt
    history: Dict[str, List[float]] = dataclasses.field(default_factory=dict)  # per epoch
    eval_accuracy: float = float("nan")
    eval_loss: float = float("nan")
    confusion: Optional[np.ndarray] = None  # [true class, predicted class] counts on the eval split
    hparams: Optional[HParams] = None       # what trained: a budget run's chosen depth filled in
    depth_choice: Optional[Dict[str, object]] = None  # DepthChoice.to_json() of a budget-chosen depth


def apply_precision(runtime: Runtime) -> None:
    """Set the global Keras mixed-precision policy (must happen before the model is built)."""
    keras.mixed_precision.set_global_policy(runtime.precision)


def describe_recipe(hparams: HParams) -> str:
    """The schedule and regularisers of a run, for its log line."""
    if hparams.lr_schedule == "linear":
        schedule = f"lr {hparams.learning_rate:g} decaying linearly to 0"
    else:
        drops = ", ".join(f"x{factor:g} at {fraction:.0%}" for fraction, factor
                          in zip(hparams.lr_drop_fractions, hparams.lr_drop_factors))
        schedule = f"lr {hparams.learning_rate:g} stepped {drops}"
    parts = [schedule + (f" after a {hparams.warmup_fraction:.0%} warm-up" if hparams.warmup_fraction else "")]
    if hparams.label_smoothing:
        parts.append(f"label smoothing {hparams.label_smoothing:g}")
    parts.append(f"cutout {hparams.cutout_size}" if hparams.cutout_size else "no cutout")
    parts.append(f"weight decay {hparams.weight_decay:g}")
    if hparams.test_time_flip:
        parts.append("test-time flip")
    return ", ".join(parts)


def training_loss(num_classes: int, label_smoothing: float):
    """Cross-entropy on integer labels, with the one-hot target smoothed by ``label_smoothing``."""
    if not label_smoothing:
        return keras.losses.SparseCategoricalCrossentropy()

    def smoothed_crossentropy(labels: tf.Tensor, probabilities: tf.Tensor) -> tf.Tensor:
        one_hot = tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32), num_classes)
        return keras.losses.categorical_crossentropy(one_hot, probabilities, label_smoothing=label_smoothing)

    return smoothed_crossentropy


def build_and_compile(hparams: HParams, dataset: DatasetSpec, runtime: Runtime) -> keras.Model:
    """ResNet-``depth`` with SGD+momentum, (smoothed) cross-entropy and accuracy; XLA if asked."""
    model = build_resnet(hparams.depth, (dataset.height, dataset.width, dataset.channels),
                         dataset.num_classes, hparams.weight_decay)
    optimizer = keras.optimizers.SGD(learning_rate=tf.Variable(hparams.learning_rate, trainable=False,
                                                               dtype=tf.float32),
                                     momentum=hparams.momentum)
    if runtime.precision == "mixed_float16":
        optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss=training_loss(dataset.num_classes, hparams.label_smoothing),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  jit_compile=runtime.xla)
    return model


def evaluate(model: keras.Model, dataset: tf.data.Dataset, num_classes: int, test_time_flip: bool):
    """``(loss, accuracy, confusion)`` of what will be served over ``dataset``.

    The predictions are the served ones (:func:`predict_probabilities`, mirror-averaged
    when ``test_time_flip``); ``confusion`` counts ``[true, predicted]``.
    """
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    total_loss = 0.0
    for images, labels in dataset:
        probabilities = predict_probabilities(model, images, test_time_flip).numpy()
        truth = labels.numpy().astype(np.int64).reshape(-1)
        total_loss -= float(np.log(np.maximum(probabilities[np.arange(len(truth)), truth], PROBABILITY_FLOOR)).sum())
        np.add.at(matrix, (truth, np.argmax(probabilities, axis=-1)), 1)
    count = int(matrix.sum())
    if not count:
        raise ValueError("the evaluation split is empty")
    return total_loss / count, float(np.trace(matrix)) / count, matrix


class _StepTimes(keras.callbacks.Callback):
    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__()
        self.clock = clock
        self.times: List[float] = []

    def on_train_batch_end(self, batch: int, logs: Optional[Dict] = None) -> None:
        self.times.append(self.clock())


PROBE_STEPS, PROBE_WARMUP_STEPS = 24, 4  # timed steps of each probed depth, after the steps that trace the graph
UNBOUNDED_EPOCHS = 10**6                  # a budget run's fit() length: the clock stops it long before
PROBABILITY_FLOOR = 1e-12                 # log(0) guard in the evaluation loss


def measure_throughput(hparams: HParams, dataset: DatasetSpec, runtime: Runtime, strategy,
                       probe_ds: tf.data.Dataset, depth: int, steps: int = PROBE_STEPS,
                       warmup: int = PROBE_WARMUP_STEPS,
                       clock: Callable[[], float] = time.monotonic) -> float:
    """Training images/s of ResNet-``depth`` on ``probe_ds``, after ``warmup`` (tracing) steps."""
    with strategy.scope():
        model = build_and_compile(dataclasses.replace(hparams, depth=depth), dataset, runtime)
    timer = _StepTimes(clock)
    model.fit(probe_ds, epochs=1, steps_per_epoch=warmup + steps, callbacks=[timer], verbose=0)
    seconds = timer.times[-1] - timer.times[warmup - 1]
    return steps * hparams.batch_size / seconds if seconds > 0 else float("inf")


DEPTH_CHOICE_FILE = "depth_choice.json"


def resolve_depth(hparams: HParams, dataset: DatasetSpec, runtime: Runtime, strategy, train_files: List[str],
                  tft_output, train_examples: int, checkpoint_dir: str, stream: TextIO,
                  clock: Callable[[], float] = time.monotonic):
    """``(hparams with depth set, DepthChoice JSON or None, seconds the probe took)``.

    A budget run without a depth probes once; the choice is kept beside the checkpoints so
    a resumed attempt trains the same network (and does not probe, or pay for it, again).
    """
    if hparams.depth is not None:
        return hparams, None, 0.0
    saved = os.path.join(checkpoint_dir, DEPTH_CHOICE_FILE)
    if tf.io.gfile.exists(saved):
        with tf.io.gfile.GFile(saved) as handle:
            choice = json.load(handle)
        stream.write(f"budget: ResNet-{choice['depth']}, chosen by the first attempt ({choice['reason']})\n")
        return dataclasses.replace(hparams, depth=int(choice["depth"])), choice, 0.0
    started = clock()
    probe_ds = make_dataset(train_files, tft_output, hparams.batch_size, True,
                            dataclasses.replace(hparams, shuffle_buffer=8 * hparams.batch_size),
                            limit=8 * hparams.batch_size)
    measured = {depth: measure_throughput(hparams, dataset, runtime, strategy, probe_ds, depth, clock=clock)
                for depth in PROBE_DEPTHS}
    probe_seconds = clock() - started
    picked: DepthChoice = choose_depth(measured, train_examples, hparams.time_budget_minutes * 60.0 - probe_seconds,
                                       hparams.budget_min_images or dataset.budget_min_images)
    choice = dict(picked.to_json(), probe_seconds=probe_seconds)
    tf.io.gfile.makedirs(checkpoint_dir)
    with tf.io.gfile.GFile(saved, "w") as handle:
        json.dump(choice, handle, indent=2)
    stream.write(f"budget: training ResNet-{picked.depth} ({probe_seconds:.0f} s probe, counted in the budget; "
                 f"{picked.reason()})\n")
    return dataclasses.replace(hparams, depth=picked.depth), choice, probe_seconds


def train_model(*, train_files: Sequence[str], eval_files: Sequence[str], tft_output, hparams: HParams,
                dataset: DatasetSpec, checkpoint_dir: str, log_dir: Optional[str] = None,
                clock: Callable[[], float] = time.monotonic, stream: Optional[TextIO] = None,
                gpus: Optional[int] = None):
    """Train (resuming from ``checkpoint_dir`` if it holds a checkpoint); return ``(model, TrainResult)``.

    Longer than 60 lines on purpose: runtime, depth choice, resume, fit and evaluation happen in
    this order and share a dozen values; split, the pieces would pass them all along. Each step's
    logic is a function of its own (``resolve_depth``, ``TrainingClock``, ``evaluate``, ...).
    """
    stream = stream or console.stream()  # the terminal, also while library output goes to the run log
    gpus = detect_gpus() if gpus is None else gpus
    runtime = resolve_runtime(hparams, gpus, cpu_bf16=not gpus and detect_cpu_bf16())
    apply_precision(runtime)
    train_files = expand_patterns(train_files)
    eval_files = expand_patterns(eval_files)
    train_examples = count_records(train_files)
    steps_per_epoch = max(1, train_examples // hparams.batch_size)
    planned = hparams.planned_steps(train_examples)

    strategy = make_strategy(runtime)
    hparams, depth_choice, probe_seconds = resolve_depth(hparams, dataset, runtime, strategy, train_files, tft_output,
                                                         train_examples, checkpoint_dir, stream, clock)
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
                              elapsed_before=float(elapsed_var.numpy()) + probe_seconds, clock=clock)
    if start_step:
        stream.write(f"resuming from {manager.latest_checkpoint} at step {start_step}, "
                     f"{run_clock.elapsed_before:.0f} s already trained\n")
    stream.write(f"training ResNet-{hparams.depth} on {train_examples} images, batch {hparams.batch_size}, "
                 f"{'budget %.1f min' % hparams.time_budget_minutes if budget else '%d steps' % planned}; "
                 f"{describe_recipe(hparams)}; precision {runtime.precision}, XLA {'on' if runtime.xla else 'off'}, "
                 f"{strategy.num_replicas_in_sync} replica(s)\n")

    def save() -> str:
        elapsed_var.assign(run_clock.elapsed())
        return manager.save(checkpoint_number=int(model.optimizer.iterations.numpy()))

    writer = tf.summary.create_file_writer(os.path.join(log_dir, "train")) if log_dir else None
    controller = StepScheduleController(run_clock, hparams.learning_rate, hparams.lr_drop_fractions,
                                        hparams.lr_drop_factors, writer, hparams.lr_schedule, hparams.warmup_fraction)
    callbacks = [controller, ProgressLogger(run_clock, hparams.batch_size, hparams.log_every_seconds, stream),
                 EpochCheckpoint(save)]
    history: Dict[str, List[float]] = {}
    started = clock()
    if not run_clock.finished(start_step):
        epochs = (math.ceil(planned / steps_per_epoch) if planned else UNBOUNDED_EPOCHS)
        train_ds = make_dataset(train_files, tft_output, hparams.batch_size, True, hparams)
        fit = model.fit(train_ds, epochs=epochs, initial_epoch=start_step // steps_per_epoch,
                        steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=0)
        history = {key: [float(v) for v in values] for key, values in fit.history.items()}
    save()
    steps_done = int(model.optimizer.iterations.numpy())
    seconds = clock() - started
    result = TrainResult(runtime=runtime, steps_done=steps_done, resumed_from_step=start_step,
                         elapsed_seconds=run_clock.elapsed(),
                         images_per_second=(steps_done - start_step) * hparams.batch_size / seconds
                         if seconds > 0 and steps_done > start_step else None,
                         learning_rates=controller.rates, history=history, hparams=hparams,
                         depth_choice=depth_choice)
    eval_ds = make_dataset(eval_files, tft_output, hparams.batch_size, False, hparams)
    result.eval_loss, result.eval_accuracy, result.confusion = evaluate(model, eval_ds, dataset.num_classes,
                                                                        hparams.test_time_flip)
    if result.images_per_second is None:  # resumed from a checkpoint written after the last step
        stream.write(f"training had finished at step {steps_done} (resumed from its checkpoint); "
                     f"eval accuracy {result.eval_accuracy:.4f}\n")
    else:
        stream.write(f"trained {steps_done} steps in {result.elapsed_seconds:.0f} s "
                     f"({result.images_per_second:,.0f} img/s); eval accuracy {result.eval_accuracy:.4f}\n")
    if writer is not None:
        writer.flush()
    return model, result
