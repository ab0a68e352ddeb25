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
from cifar_tfx.trainer.budget import (LADDERS, NetworkChoice, Recheck, choose_network, recheck_network,
                                      small_crop_gain)
from cifar_tfx.trainer.callbacks import (EpochCheckpoint, PhaseEnd, ProgressLogger, StepScheduleController,
                                         ThroughputCheck)
from cifar_tfx.trainer.checkpoints import newest_intact
from cifar_tfx.trainer.data import cached_examples, count_records, expand_patterns, make_dataset, training_batches
from cifar_tfx.trainer.hparams import HParams
from cifar_tfx.trainer import whitening
from cifar_tfx.trainer.whitening import PatchWhitening
from cifar_tfx.trainer.model import build_network, predict_probabilities, stem_filters
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
    eval_accuracy: float = float("nan")    # NaN when train_model was given no eval_files
    eval_loss: float = float("nan")
    confusion: Optional[np.ndarray] = None  # [true class, predicted class] counts on eval_files
    hparams: Optional[HParams] = None       # what trained: a budget run's chosen size filled in
    network_choice: Optional[Dict[str, object]] = None  # NetworkChoice.to_json() of a budget-chosen size


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
    if hparams.width != 1:
        parts.append(f"{hparams.width}x the filters")
    if hparams.whitened_stem:
        parts.append("fixed patch-whitening stem")
    if hparams.nesterov:
        parts.append("Nesterov momentum")
    if hparams.zero_init_residual:
        parts.append("blocks start as their shortcut")
    if hparams.label_smoothing:
        parts.append(f"label smoothing {hparams.label_smoothing:g}")
    parts.append(f"cutout {hparams.cutout_size}" if hparams.cutout_size else "no cutout")
    if hparams.small_crop_fraction:
        parts.append(f"{hparams.small_crop_size}x{hparams.small_crop_size} crops for the first "
                     f"{hparams.small_crop_fraction:.0%}")
    parts.append(f"weight decay {hparams.weight_decay:g}")
    views = [name for name, used in (("flip", hparams.test_time_flip),
                                     (f"shift {hparams.test_time_shift}", hparams.test_time_shift)) if used]
    if views:
        parts.append("test-time " + " + ".join(views))
    return ", ".join(parts)


def training_loss(num_classes: int, label_smoothing: float):
    """Cross-entropy on integer labels, with the one-hot target smoothed by ``label_smoothing``."""
    if not label_smoothing:
        return keras.losses.SparseCategoricalCrossentropy()

    def smoothed_crossentropy(labels: tf.Tensor, probabilities: tf.Tensor) -> tf.Tensor:
        one_hot = tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32), num_classes)
        return keras.losses.categorical_crossentropy(one_hot, probabilities, label_smoothing=label_smoothing)

    return smoothed_crossentropy


def build_and_compile(hparams: HParams, dataset: DatasetSpec, runtime: Runtime, crop_size: Optional[int] = None,
                      weights_from: Optional[keras.Model] = None,
                      stem_whitening: Optional[PatchWhitening] = None) -> keras.Model:
    """The network ``hparams`` names with SGD+momentum, (smoothed) cross-entropy and accuracy; XLA if asked.

    ``crop_size``: for ``crop_size`` x ``crop_size`` windows instead of whole images. ``weights_from``: a
    network built here whose layers and optimizer this one shares (the small-crop phase of its run).
    ``stem_whitening``: what a ``whitened_stem`` run cuts its fixed stem from, for this network's width
    (:func:`stem_whitening_for`).
    """
    stem_kernel = None
    if hparams.whitened_stem and weights_from is None:
        if stem_whitening is None:
            raise ValueError("whitened_stem: build_and_compile needs the patch whitening (stem_whitening_for)")
        stem_kernel = stem_whitening.kernel(stem_filters(hparams))
    shape = (crop_size or dataset.height, crop_size or dataset.width, dataset.channels)
    model = build_network(hparams, shape, dataset.num_classes, weights_from=weights_from,
                          stem_kernel=stem_kernel)
    if weights_from is not None:
        optimizer = weights_from.optimizer
    else:
        optimizer = keras.optimizers.SGD(learning_rate=tf.Variable(hparams.learning_rate, trainable=False,
                                                                   dtype=tf.float32),
                                         momentum=hparams.momentum, nesterov=hparams.nesterov)
        if runtime.precision == "mixed_float16":
            optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss=training_loss(dataset.num_classes, hparams.label_smoothing),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  jit_compile=runtime.xla)
    return model


def stem_whitening_for(hparams: HParams, train_files: List[str], tft_output) -> Optional[PatchWhitening]:
    """What a ``whitened_stem`` run cuts each network's fixed stem from: the patch directions of the first
    training records as Transform normalises them (the same every attempt); None otherwise."""
    if not hparams.whitened_stem:
        return None
    sample = cached_examples(train_files, tft_output, limit=whitening.SAMPLE_IMAGES).batch(whitening.SAMPLE_IMAGES)
    images = np.concatenate([batch_images.numpy() for batch_images, _ in sample])
    return whitening.patch_whitening(images)


def evaluate(model: keras.Model, dataset: tf.data.Dataset, num_classes: int, test_time_flip: bool,
             test_time_shift: int = 0):
    """``(loss, accuracy, confusion)`` of what will be served over ``dataset``.

    The predictions are the served ones (:func:`predict_probabilities`, averaged over the
    test-time views asked for); ``confusion`` counts ``[true, predicted]``.
    """
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    total_loss = 0.0
    # One graph for all batches: run eagerly, the views' map_fn cost ~8 minutes on 5,000 images here.
    predict = tf.function(lambda images: predict_probabilities(model, images, test_time_flip, test_time_shift))
    for images, labels in dataset:
        probabilities = predict(images).numpy()
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


PROBE_IMAGES, PROBE_WARMUP_STEPS = 3072, 4  # timed images of each probed network, after the steps that trace the graph
UNBOUNDED_EPOCHS = 10**6                  # a budget run's fit() length: the clock stops it long before
PROBABILITY_FLOOR = 1e-12                 # log(0) guard in the evaluation loss


def probe_steps(batch_size: int) -> int:
    """Timed steps of a probe: :data:`PROBE_IMAGES` images, within 8 to 24 steps (24 at batch 128, 12 at 256)."""
    return min(24, max(8, PROBE_IMAGES // batch_size))


def measure_throughput(network: HParams, dataset: DatasetSpec, runtime: Runtime, strategy,
                       probe_ds: tf.data.Dataset, steps: Optional[int] = None, warmup: int = PROBE_WARMUP_STEPS,
                       clock: Callable[[], float] = time.monotonic, crop_size: Optional[int] = None,
                       stem_whitening: Optional[PatchWhitening] = None) -> float:
    """Training images/s of the ``network`` (hparams with its size set) on ``probe_ds``, after ``warmup``
    (tracing) steps (``steps`` timed: :func:`probe_steps` of the batch unless given); ``crop_size``:
    ``probe_ds`` holds windows of that size; ``stem_whitening``: as for :func:`build_and_compile`."""
    steps = steps or probe_steps(network.batch_size)
    with strategy.scope():
        model = build_and_compile(network, dataset, runtime, crop_size, stem_whitening=stem_whitening)
    timer = _StepTimes(clock)
    model.fit(probe_ds, epochs=1, steps_per_epoch=warmup + steps, callbacks=[timer], verbose=0)
    seconds = timer.times[-1] - timer.times[warmup - 1]
    return steps * network.batch_size / seconds if seconds > 0 else float("inf")


NETWORK_CHOICE_FILE = "network_choice.json"


def sized(hparams: HParams, choice: Dict[str, object]) -> HParams:
    """``hparams`` with the size a budget choice (``NetworkChoice.to_json()``) names."""
    return dataclasses.replace(hparams, **{str(choice["knob"]): int(choice["value"])})


def resolve_network(hparams: HParams, dataset: DatasetSpec, runtime: Runtime, strategy, train_files: List[str],
                    tft_output, train_examples: int, checkpoint_dir: str, stream: TextIO,
                    clock: Callable[[], float] = time.monotonic,
                    stem_whitening: Optional[PatchWhitening] = None):
    """``(hparams with the network's size set, NetworkChoice JSON or None, seconds the probe took)``.

    A budget run that leaves its network's size open (a resnet's depth, a resnet9's width) probes once on
    the architecture's :class:`~cifar_tfx.trainer.budget.Ladder`; the choice is kept beside the checkpoints
    so a resumed attempt trains the same network (and does not probe, or pay for it, again).
    """
    if not hparams.network_left_to_probe:
        return hparams, None, 0.0
    saved = os.path.join(checkpoint_dir, NETWORK_CHOICE_FILE)
    if tf.io.gfile.exists(saved):
        with tf.io.gfile.GFile(saved) as handle:
            choice = json.load(handle)
        stream.write(f"budget: {choice['network']}, chosen by the first attempt ({choice['reason']})\n")
        return sized(hparams, choice), choice, 0.0
    ladder = LADDERS[hparams.architecture]
    started = clock()
    probe_hparams = dataclasses.replace(hparams, shuffle_buffer=8 * hparams.batch_size)

    probe_examples = cached_examples(train_files, tft_output, limit=8 * hparams.batch_size)  # decoded once

    def probe(value: int, crop_size: Optional[int] = None) -> float:
        probe_ds = training_batches(probe_examples, hparams.batch_size, probe_hparams, crop_size)
        return measure_throughput(dataclasses.replace(hparams, **{ladder.knob: value}), dataset, runtime, strategy,
                                  probe_ds, clock=clock, crop_size=crop_size,
                                  stem_whitening=stem_whitening)

    measured = {value: probe(value) for value in ladder.probes}
    # A run that starts on small crops sees more images per second while it does: the choice counts them,
    # and the recheck compares a rate timed on them with the whole-image prediction times this speedup.
    smallest = ladder.probes[0]
    speedup = probe(smallest, hparams.small_crop_size) / measured[smallest] if hparams.small_crop_fraction else None
    probe_seconds = clock() - started
    budget_seconds = hparams.time_budget_minutes * 60.0
    seconds_left = budget_seconds - probe_seconds
    picked: NetworkChoice = choose_network(
        measured, train_examples, seconds_left,
        hparams.budget_min_images or dataset.budget_min_images_for(hparams.architecture), ladder,
        image_gain=small_crop_gain(speedup, hparams.small_crop_fraction, budget_seconds, seconds_left))
    choice = dict(picked.to_json(), probe_seconds=probe_seconds, small_crop_speedup=speedup)
    save_network_choice(checkpoint_dir, choice)
    crops = f"; small crops train x{speedup:.2f} faster" if speedup else ""
    stream.write(f"budget: training {picked.network} ({probe_seconds:.0f} s probe, counted in the budget; "
                 f"{picked.reason()}{crops})\n")
    return sized(hparams, choice), choice, probe_seconds


def save_network_choice(checkpoint_dir: str, choice: Dict[str, object]) -> None:
    """Keep ``choice`` beside the checkpoints, where a resumed attempt finds it."""
    tf.io.gfile.makedirs(checkpoint_dir)
    with tf.io.gfile.GFile(os.path.join(checkpoint_dir, NETWORK_CHOICE_FILE), "w") as handle:
        json.dump(choice, handle, indent=2)


def restart_with_choice(checkpoint_dir: str, choice: Dict[str, object]) -> None:
    """Drop the checkpoints of the network being abandoned, then save the new ``choice``.

    In this order: an attempt stopped in between finds the old choice and no checkpoint,
    and trains the old network from its start rather than restoring into the wrong one.
    """
    for name in tf.io.gfile.listdir(checkpoint_dir):
        if name == "checkpoint" or name.startswith("ckpt-"):
            tf.io.gfile.remove(os.path.join(checkpoint_dir, name))
    save_network_choice(checkpoint_dir, choice)


@dataclasses.dataclass
class _Fitted:
    """One network's training in this attempt."""

    model: keras.Model
    run_clock: TrainingClock
    start_step: int                    # restored from a checkpoint; 0 when fresh
    seconds: float                     # wall time of this attempt's fit
    learning_rates: List[float]
    history: Dict[str, List[float]]


@dataclasses.dataclass
class _Fitting:
    """What every fit of one training run shares (a budget run may fit two networks: see ``recheck``)."""

    dataset: DatasetSpec
    runtime: Runtime
    strategy: object
    train_files: List[str]
    tft_output: object
    train_examples: int
    checkpoint_dir: str
    writer: Optional[object]
    stream: TextIO
    clock: Callable[[], float]
    extra_callbacks: Sequence[keras.callbacks.Callback] = ()
    phase_crop_size: Optional[int] = None  # the window size of the phase being fitted; None: whole images
    stem_whitening: Optional[PatchWhitening] = None  # a whitened_stem run's patch directions (stem_whitening_for)
    _examples: Optional[tf.data.Dataset] = dataclasses.field(default=None, init=False, repr=False)

    def training_examples(self) -> tf.data.Dataset:
        """The decoded training images, built once: every fit of the run (both phases, a recheck's
        restart) reads the same in-memory cache instead of decoding the records again."""
        if self._examples is None:
            self._examples = cached_examples(self.train_files, self.tft_output)
        return self._examples

    def fit(self, hparams: HParams, elapsed_before: float,
            recheck: Optional[Callable[[float, float, float], bool]]) -> _Fitted:
        """Build the network ``hparams`` names, restore its checkpoint if any, train until the run is done
        (or until ``recheck``, given the steady images/s, the seconds left and the images seen, asks for
        another network)."""
        with self.strategy.scope():
            model = build_and_compile(hparams, self.dataset, self.runtime, stem_whitening=self.stem_whitening)
            elapsed_var = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="elapsed_seconds")
            checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer, elapsed_seconds=elapsed_var)
        resume_from = newest_intact(self.checkpoint_dir, self.stream)  # a damaged newest one is moved aside
        manager = tf.train.CheckpointManager(checkpoint, self.checkpoint_dir, max_to_keep=2, checkpoint_name="ckpt")
        if resume_from:
            checkpoint.restore(resume_from).expect_partial()
        start_step = int(model.optimizer.iterations.numpy())
        budget = hparams.time_budget_minutes * 60.0 if hparams.time_budget_minutes is not None else None
        planned = hparams.planned_steps(self.train_examples)
        run_clock = TrainingClock(planned_steps=planned, budget_seconds=budget,
                                  elapsed_before=float(elapsed_var.numpy()) + elapsed_before, clock=self.clock)
        if start_step:
            self.stream.write(f"resuming from {resume_from} at step {start_step}, "
                              f"{run_clock.elapsed_before:.0f} s already trained\n")
        self.stream.write(
            f"training {hparams.network_name} on {self.train_examples} images, batch {hparams.batch_size}, "
            f"{'budget %.1f min' % hparams.time_budget_minutes if budget else '%d steps' % planned}; "
            f"{describe_recipe(hparams)}; precision {self.runtime.precision}, "
            f"XLA {'on' if self.runtime.xla else 'off'}, {self.strategy.num_replicas_in_sync} replica(s)\n")

        def save() -> str:
            """Checkpoint the current step once: the fit's last epoch end may have saved it already."""
            step = int(model.optimizer.iterations.numpy())
            if manager.latest_checkpoint and os.path.basename(manager.latest_checkpoint) == f"ckpt-{step}":
                return manager.latest_checkpoint
            elapsed_var.assign(run_clock.elapsed())
            return manager.save(checkpoint_number=step)

        controller = StepScheduleController(run_clock, hparams.learning_rate, hparams.lr_drop_fractions,
                                            hparams.lr_drop_factors, self.writer, hparams.lr_schedule,
                                            hparams.warmup_fraction)
        callbacks = [controller, ProgressLogger(run_clock, hparams.batch_size, hparams.log_every_seconds, self.stream),
                     EpochCheckpoint(save)]
        if recheck is not None and run_clock.by_time:
            callbacks.append(ThroughputCheck(run_clock, hparams.batch_size, recheck, now=self.clock))
        callbacks.extend(self.extra_callbacks)
        started = self.clock()
        history = self._fit_phases(hparams, model, run_clock, callbacks)
        save()
        if controller.stopped_at is not None and run_clock.by_time:  # where a budget run's end goes
            self.stream.write(f"budget spent {controller.stopped_at:.1f} s in; the fit and its last checkpoint "
                              f"were done {run_clock.elapsed() - controller.stopped_at:.1f} s later\n")
        return _Fitted(model=model, run_clock=run_clock, start_step=start_step, seconds=self.clock() - started,
                       learning_rates=controller.rates, history=history)

    def _fit_phases(self, hparams: HParams, model: keras.Model, run_clock: TrainingClock,
                    callbacks: List[keras.callbacks.Callback]) -> Dict[str, List[float]]:
        """Fit ``model`` until the run is done: first, while less than ``hparams.small_crop_fraction`` of
        the run is done, a copy for small crops that shares its layers and optimizer; then ``model`` itself.
        A phase stopped before its end (the recheck asked for another network) ends the fit: no later
        phase starts. The per-epoch history of the fits, in order."""
        phases = [(None, 1.0)]
        if hparams.small_crop_fraction:
            phases.insert(0, (hparams.small_crop_size, hparams.small_crop_fraction))
        steps_per_epoch = max(1, self.train_examples // hparams.batch_size)
        planned = hparams.planned_steps(self.train_examples)
        epochs = math.ceil(planned / steps_per_epoch) if planned else UNBOUNDED_EPOCHS
        history: Dict[str, List[float]] = {}
        for crop_size, until in phases:
            step = int(model.optimizer.iterations.numpy())
            if run_clock.finished(step) or run_clock.fraction_done(step) >= until:
                continue
            phase_model = model
            if crop_size:
                with self.strategy.scope():
                    phase_model = build_and_compile(hparams, self.dataset, self.runtime, crop_size, weights_from=model)
                self.stream.write(f"training on {crop_size}x{crop_size} crops until {until:.0%} of the run, "
                                  f"then on whole images\n")
            train_ds = training_batches(self.training_examples(), hparams.batch_size, hparams, crop_size)
            self.phase_crop_size = crop_size
            ends = [PhaseEnd(run_clock, until)] if until < 1.0 else []
            fit = phase_model.fit(train_ds, epochs=epochs, initial_epoch=step // steps_per_epoch,
                                  steps_per_epoch=steps_per_epoch, callbacks=callbacks + ends, verbose=0)
            for key, values in fit.history.items():
                history.setdefault(key, []).extend(float(v) for v in values)
            if ends and not ends[0].reached:
                break  # stopped inside the phase: whoever stopped it decides what trains next
        return history


def _fit_with_recheck(fitting: _Fitting, hparams: HParams, network_choice: Optional[Dict[str, object]],
                      probe_seconds: float):
    """``(fitted, hparams, network_choice)``: fit the chosen network; in the attempt that probed
    (``probe_seconds`` > 0), recheck the probe once and, if the recheck says so, restart with its
    network (its checkpoints replace the abandoned one's). A resumed attempt keeps the saved choice."""
    rechecks: List[Recheck] = []

    def recheck(observed: float, seconds_left: float, images_seen: float) -> bool:
        """Called once by ThroughputCheck with steady images/s: True switches the network."""
        crop_speedup = network_choice.get("small_crop_speedup")
        rechecks.append(recheck_network(
            network_choice["measured_images_per_second"], int(network_choice["value"]), observed,
            fitting.train_examples, seconds_left, network_choice["min_images"], images_seen,
            ladder=LADDERS[hparams.architecture],
            speedup=(crop_speedup or 1.0) if fitting.phase_crop_size else 1.0,
            image_gain=small_crop_gain(crop_speedup, hparams.small_crop_fraction, hparams.time_budget_minutes * 60.0,
                                       seconds_left)))
        fitting.stream.write(f"budget: {rechecks[-1].reason()}\n")
        return rechecks[-1].switched

    fitted = fitting.fit(hparams, elapsed_before=probe_seconds, recheck=recheck if probe_seconds else None)
    if not rechecks:
        return fitted, hparams, network_choice
    network_choice = dict(network_choice, recheck=rechecks[0].to_json())
    if not rechecks[0].switched:
        save_network_choice(fitting.checkpoint_dir, network_choice)
        return fitted, hparams, network_choice
    network_choice.update(value=rechecks[0].value, network=rechecks[0].ladder.label(rechecks[0].value))
    hparams = sized(hparams, network_choice)
    restart_with_choice(fitting.checkpoint_dir, network_choice)
    return fitting.fit(hparams, elapsed_before=fitted.run_clock.elapsed(), recheck=None), hparams, network_choice


def train_model(*, train_files: Sequence[str], tft_output, hparams: HParams, dataset: DatasetSpec,
                checkpoint_dir: str, eval_files: Sequence[str] = (), log_dir: Optional[str] = None,
                clock: Callable[[], float] = time.monotonic, stream: Optional[TextIO] = None,
                gpus: Optional[int] = None, callbacks: Sequence[keras.callbacks.Callback] = ()):
    """Train (resuming from ``checkpoint_dir`` if it holds a checkpoint); return ``(model, TrainResult)``.

    In order: the runtime, the network's size (a budget run without one probes: ``resolve_network``), the fit
    (``_fit_with_recheck``: the attempt that probed checks the probe's rates once and may restart with
    another network), then, if ``eval_files`` are given, the evaluation of what will be served
    (``evaluate``). The pipeline's Trainer gives none: its Evaluator is the one reader of the test split.
    ``callbacks`` join every fit's own (benchmarks watch the weights with them).
    """
    stream = stream or console.stream()  # the terminal, also while library output goes to the run log
    gpus = detect_gpus() if gpus is None else gpus
    runtime = resolve_runtime(hparams, gpus, cpu_bf16=not gpus and detect_cpu_bf16())
    apply_precision(runtime)
    train_files = expand_patterns(train_files)
    train_examples = count_records(train_files)

    strategy = make_strategy(runtime)
    stem_whitening = stem_whitening_for(hparams, train_files, tft_output)
    hparams, network_choice, probe_seconds = resolve_network(hparams, dataset, runtime, strategy, train_files,
                                                             tft_output, train_examples, checkpoint_dir, stream, clock,
                                                             stem_whitening)
    fitting = _Fitting(dataset=dataset, runtime=runtime, strategy=strategy, train_files=train_files,
                       tft_output=tft_output, train_examples=train_examples, checkpoint_dir=checkpoint_dir,
                       writer=tf.summary.create_file_writer(os.path.join(log_dir, "train")) if log_dir else None,
                       stream=stream, clock=clock, extra_callbacks=tuple(callbacks),
                       stem_whitening=stem_whitening)
    fitted, hparams, network_choice = _fit_with_recheck(fitting, hparams, network_choice, probe_seconds)
    model = fitted.model
    steps_done = int(model.optimizer.iterations.numpy())
    if not steps_done:  # an untrained network must not reach the Evaluator as if it were a result
        raise RuntimeError(f"{hparams.network_name} trained no step: the run was over before its first step "
                           f"({fitted.run_clock.elapsed():.0f} s of a {hparams.time_budget_minutes or 0:g}-minute "
                           f"budget spent, {probe_seconds:.0f} s of them on the probe); give it more minutes")
    result = TrainResult(runtime=runtime, steps_done=steps_done, resumed_from_step=fitted.start_step,
                         elapsed_seconds=fitted.run_clock.elapsed(),
                         images_per_second=(steps_done - fitted.start_step) * hparams.batch_size / fitted.seconds
                         if fitted.seconds > 0 and steps_done > fitted.start_step else None,
                         learning_rates=fitted.learning_rates, history=fitted.history, hparams=hparams,
                         network_choice=network_choice)
    evaluated = ""
    if eval_files:
        eval_ds = make_dataset(expand_patterns(eval_files), tft_output, hparams.batch_size, False, hparams)
        result.eval_loss, result.eval_accuracy, result.confusion = evaluate(
            model, eval_ds, dataset.num_classes, hparams.test_time_flip, hparams.test_time_shift)
        evaluated = f"; eval accuracy {result.eval_accuracy:.4f}"
    if result.images_per_second is None:  # resumed from a checkpoint written after the last step
        stream.write(f"training had finished at step {steps_done} (resumed from its checkpoint){evaluated}\n")
    else:
        stream.write(f"trained {steps_done} steps in {result.elapsed_seconds:.0f} s "
                     f"({result.images_per_second:,.0f} img/s){evaluated}\n")
    if fitting.writer is not None:
        fitting.writer.flush()
    return model, result
