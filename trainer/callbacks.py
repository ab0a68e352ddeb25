"""Keras callbacks of the training loop: learning-rate control, budget stop, logging, checkpoints."""

from __future__ import annotations

import sys
import time
from typing import Callable, Dict, List, Optional, TextIO

import tensorflow as tf
import tf_keras as keras

from cifar_tfx.progress import format_duration
from cifar_tfx.trainer.schedule import TrainingClock, learning_rate_at


class StepScheduleController(keras.callbacks.Callback):
    """Sets the learning rate before every step and stops when the run is done.

    The step is the optimizer's iteration count, so a resumed run continues the
    schedule where it stopped. The rate used, the loss and the accuracy go to
    TensorBoard (``learning_rate``, ``loss``, ``accuracy``) every step.
    """

    def __init__(self, clock: TrainingClock, initial_rate: float, drop_fractions, drop_factors,
                 writer: Optional[tf.summary.SummaryWriter] = None, schedule: str = "step",
                 warmup_fraction: float = 0.0) -> None:
        super().__init__()
        self.clock = clock
        self.initial_rate = initial_rate
        self.drop_fractions = tuple(drop_fractions)
        self.drop_factors = tuple(drop_factors)
        self.schedule = schedule
        self.warmup_fraction = warmup_fraction
        self.writer = writer
        self.rates: List[float] = []  # learning rate of each step run by this callback
        self.stopped_at: Optional[float] = None  # the clock's elapsed seconds when it asked the fit to stop
        self._rate = initial_rate

    def _step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def on_train_batch_begin(self, batch: int, logs: Optional[Dict] = None) -> None:
        step = self._step()
        self._rate = learning_rate_at(self.clock.fraction_done(step), self.initial_rate,
                                      self.drop_fractions, self.drop_factors, self.schedule,
                                      self.warmup_fraction)
        self.model.optimizer.learning_rate.assign(self._rate)

    def on_train_batch_end(self, batch: int, logs: Optional[Dict] = None) -> None:
        step = self._step()  # already incremented: the step just run is step - 1
        self.rates.append(self._rate)
        if self.writer is not None:
            with self.writer.as_default(step=step - 1):
                tf.summary.scalar("learning_rate", self._rate)
                for key in ("loss", "accuracy"):
                    if logs and key in logs:
                        tf.summary.scalar(key, logs[key])
        if self.clock.finished(step):
            self.stopped_at = self.clock.elapsed()
            self.model.stop_training = True


class ProgressLogger(keras.callbacks.Callback):
    """A line every ``interval`` seconds: step, images/s, loss, accuracy, learning rate, ETA."""

    def __init__(self, clock: TrainingClock, batch_size: int, interval: float,
                 stream: Optional[TextIO] = None, now: Optional[Callable[[], float]] = None) -> None:
        super().__init__()
        self.clock = clock
        self.batch_size = batch_size
        self.interval = interval
        self.stream = stream or sys.stderr
        self.now = now or time.monotonic
        self._last_time: Optional[float] = None
        self._last_step = 0

    def on_train_batch_end(self, batch: int, logs: Optional[Dict] = None) -> None:
        now = self.now()
        if self._last_time is None:  # rate and ETA count from the end of the first (tracing) step
            self._last_time, self._last_step = now, int(self.model.optimizer.iterations.numpy())
            return
        if now - self._last_time < self.interval:
            return
        step = int(self.model.optimizer.iterations.numpy())
        rate = (step - self._last_step) * self.batch_size / (now - self._last_time)
        if self.clock.by_time:
            remaining = self.clock.budget_seconds - self.clock.elapsed()
            total = "budget " + format_duration(self.clock.budget_seconds)
        else:
            steps_per_second = (step - self._last_step) / (now - self._last_time)
            remaining = (self.clock.planned_steps - step) / steps_per_second if steps_per_second else float("inf")
            total = f"{self.clock.planned_steps}"
        logs = logs or {}
        lr = float(self.model.optimizer.learning_rate.numpy())
        self.stream.write(
            f"step {step}/{total}  {rate:,.0f} img/s  loss {logs.get('loss', float('nan')):.4f}  "
            f"acc {logs.get('accuracy', float('nan')):.4f}  lr {lr:g}  ETA {format_duration(remaining)}\n")
        self.stream.flush()
        self._last_time, self._last_step = now, step


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the run's checkpoint (model, optimizer, elapsed time) at every epoch end."""

    def __init__(self, save: Callable[[], str]) -> None:
        super().__init__()
        self.save = save

    def on_epoch_end(self, epoch: int, logs: Optional[Dict] = None) -> None:
        self.save()


class PhaseEnd(keras.callbacks.Callback):
    """Stops a fit once ``until`` of the run is done (the small-crop phase of a run; the rest is another fit).

    ``reached``: the phase ran to its end. False when the fit ended otherwise (another callback
    stopped it: the recheck asking for another network), so the caller starts no later phase.
    Give it last in the fit's callbacks, so that it sees a stop asked for by the others in the same step.
    """

    def __init__(self, clock: TrainingClock, until: float) -> None:
        super().__init__()
        self.clock = clock
        self.until = until
        self.reached = False

    def on_train_batch_end(self, batch: int, logs: Optional[Dict] = None) -> None:
        if self.model.stop_training:
            return
        if self.clock.fraction_done(int(self.model.optimizer.iterations.numpy())) >= self.until:
            self.reached = True
            self.model.stop_training = True


class ThroughputCheck(keras.callbacks.Callback):
    """Times steady training once and hands the images/s to ``decide``; training stops if it says so.

    The window is ``window_seconds`` starting at the end of the first epoch (which also
    decodes and caches the data, so it is slower than the rest). ``decide(images_per_second,
    seconds_left, images_seen)`` is not called when the window ends after ``latest_fraction``
    of the budget: a restart then would throw away too much.
    """

    def __init__(self, clock: TrainingClock, batch_size: int, decide: Callable[[float, float, float], bool],
                 window_seconds: float = 30.0, latest_fraction: float = 0.25,
                 now: Optional[Callable[[], float]] = None) -> None:
        super().__init__()
        self.clock = clock
        self.batch_size = batch_size
        self.decide = decide
        self.window_seconds = window_seconds
        self.latest_fraction = latest_fraction
        self.now = now or time.monotonic
        self.images_per_second: Optional[float] = None
        self._window_start: Optional[tuple] = None  # (time, step)
        self._done = False

    def on_epoch_end(self, epoch: int, logs: Optional[Dict] = None) -> None:
        if self._window_start is None:
            self._window_start = (self.now(), int(self.model.optimizer.iterations.numpy()))

    def on_train_batch_end(self, batch: int, logs: Optional[Dict] = None) -> None:
        if self._done or self._window_start is None:
            return
        now = self.now()
        started, first_step = self._window_start
        if now - started < self.window_seconds:
            return
        self._done = True
        if self.clock.elapsed() > self.latest_fraction * self.clock.budget_seconds:
            return
        step = int(self.model.optimizer.iterations.numpy())
        self.images_per_second = (step - first_step) * self.batch_size / (now - started)
        if self.decide(self.images_per_second, self.clock.budget_seconds - self.clock.elapsed(),
                       float(step * self.batch_size)):
            self.model.stop_training = True
