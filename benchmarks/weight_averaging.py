"""Does averaging the weights beat the last weights of a budget run? One run, every average scored against it.

    .venv/bin/python -m benchmarks.weight_averaging --pipeline-root <root that ran ExampleGen and Transform> \
        --dataset cifar10 --minutes 10 [--variant budget-d20] [--ema 0.998 0.999] [--swa 0.1 0.25 0.5]

Trains one variant of :mod:`benchmarks.budget_levers` (same validation split, same root) and, while it
trains, keeps exponential moving averages of the trainable weights (``--ema``: one per decay, updated
every step) and uniform averages over the end of the run (``--swa``: the last fraction f, sampled every
:data:`SWA_EVERY` steps). Under the linear schedule, the last f of the run (after the warm-up) is where
the learning rate is at most f of its peak, which is how :class:`WeightAverages` finds it without the
run's clock.

An average of weights does not come with BatchNorm statistics that match it (tf_keras's ``use_ema``
skipped this and lost 5.4 points: BENCHMARKS.md, "Levers on CIFAR-10"), so before each average is scored its moving
means and variances are measured again on training batches (:func:`reestimate_batchnorm`). The last
weights are scored with their own statistics and re-estimated ones, so the comparison is paired: one run,
the same validation images, the differences free of run-to-run noise.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from typing import Dict, List, Sequence

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

SWA_EVERY = 5             # steps between the samples of a uniform average
BATCHNORM_BATCHES = 60    # training batches that re-estimate BatchNorm (momentum 0.9: the start weighs 0.9^60)
SCORED_VIEWS = {"plain": (False, 0), "served (flip + shift 2)": (True, 2)}


class WeightAverages(keras.callbacks.Callback):
    """EMAs of the trainable weights (every step) and uniform averages of the run's last fractions."""

    def __init__(self, ema_decays: Sequence[float] = (), swa_fractions: Sequence[float] = (),
                 every: int = SWA_EVERY) -> None:
        super().__init__()
        self.ema_decays, self.swa_fractions, self.every = tuple(ema_decays), tuple(swa_fractions), every
        self.ema: Dict[float, List[tf.Variable]] = {}
        self.swa_sums: Dict[float, List[tf.Variable]] = {}
        self.swa_samples: Dict[float, int] = {fraction: 0 for fraction in self.swa_fractions}
        self.peak_rate = 0.0
        self.decaying = False     # the rate has started to fall: the warm-up is over

    def on_train_begin(self, logs=None) -> None:
        weights = self.model.trainable_weights
        self.ema = {decay: [tf.Variable(w, trainable=False) for w in weights] for decay in self.ema_decays}
        self.swa_sums = {f: [tf.Variable(tf.zeros_like(w), trainable=False) for w in weights]
                         for f in self.swa_fractions}
        self._update_ema = tf.function(self._ema_step)

    def _ema_step(self) -> None:
        for decay, averages in self.ema.items():
            for average, weight in zip(averages, self.model.trainable_weights):
                average.assign(decay * average + (1.0 - decay) * weight)

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        if self.ema:
            self._update_ema()
        rate = float(self.model.optimizer.learning_rate.numpy())
        self.decaying = self.decaying or rate < self.peak_rate
        self.peak_rate = max(self.peak_rate, rate)
        if not self.decaying or int(self.model.optimizer.iterations.numpy()) % self.every:
            return
        for fraction in self.swa_fractions:
            if rate <= fraction * self.peak_rate:
                for total, weight in zip(self.swa_sums[fraction], self.model.trainable_weights):
                    total.assign_add(weight)
                self.swa_samples[fraction] += 1

    def averages(self) -> Dict[str, List[tf.Tensor]]:
        """``{name: weights in trainable_weights order}`` of every average that has samples."""
        named = {f"EMA {decay:g}": [tf.identity(v) for v in averages] for decay, averages in self.ema.items()}
        for fraction, sums in self.swa_sums.items():
            samples = self.swa_samples[fraction]
            if samples:
                named[f"SWA last {fraction:.0%} ({samples} samples)"] = [v / samples for v in sums]
        return named


def batchnorm_layers(model: keras.Model) -> List[keras.layers.BatchNormalization]:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def reestimate_batchnorm(model: keras.Model, batches: tf.data.Dataset) -> None:
    """Forget every BatchNorm layer's moving statistics and measure them again on ``batches`` of images."""
    for layer in batchnorm_layers(model):
        layer.moving_mean.assign(tf.zeros_like(layer.moving_mean))
        layer.moving_variance.assign(tf.ones_like(layer.moving_variance))
    forward = tf.function(lambda images: model(images, training=True))  # training=True updates the statistics
    for images, _ in batches:
        forward(images)


def score_weights(model, named_weights, batchnorm_batches, eval_ds, num_classes: int) -> None:
    """Print the accuracy of each weight set (BatchNorm re-estimated; the last weights also as trained)."""
    from cifar_tfx.trainer.train import evaluate

    trained_statistics = [tf.identity(v) for layer in batchnorm_layers(model)
                          for v in (layer.moving_mean, layer.moving_variance)]
    runs = [("last weights, their own BatchNorm statistics", "last weights", False)]
    runs += [(f"{name}, BatchNorm re-estimated", name, True) for name in named_weights]
    for label, name, reestimate in runs:
        for variable, value in zip(model.trainable_weights, named_weights[name]):
            variable.assign(value)
        started = time.perf_counter()
        if reestimate:
            reestimate_batchnorm(model, batchnorm_batches)
        else:
            statistics = [v for layer in batchnorm_layers(model) for v in (layer.moving_mean, layer.moving_variance)]
            for variable, value in zip(statistics, trained_statistics):
                variable.assign(value)
        seconds = time.perf_counter() - started
        accuracy = {view: evaluate(model, eval_ds, num_classes, flip, shift)[1]
                    for view, (flip, shift) in SCORED_VIEWS.items()}
        print(f"{label:>56}: " + ", ".join(f"{view} {value:.4f}" for view, value in accuracy.items())
              + (f"  (BatchNorm pass {seconds:.1f} s)" if reestimate else ""), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline-root", required=True)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--variant", default="budget-d20", help="a budget_levers variant spec")
    parser.add_argument("--ema", type=float, nargs="*", default=[0.998, 0.999])
    parser.add_argument("--swa", type=float, nargs="*", default=[0.1, 0.25, 0.5])
    parser.add_argument("--validation-images", type=int, default=5000)
    args = parser.parse_args()

    from benchmarks.budget_levers import resolve_variant, training_inputs, variants
    from cifar_tfx.data.datasets import get_dataset
    from cifar_tfx.trainer.data import make_dataset
    from cifar_tfx.trainer.train import train_model

    dataset = get_dataset(args.dataset)
    tft_output, train_files, eval_files, measured_on = training_inputs(args.pipeline_root, args.validation_images)
    hparams = dataclasses.replace(resolve_variant(args.variant, variants(args.minutes, dataset)), log_every_seconds=60.0)
    watcher = WeightAverages(args.ema, args.swa)
    with tempfile.TemporaryDirectory() as checkpoints:
        model, result = train_model(train_files=train_files, tft_output=tft_output, hparams=hparams, dataset=dataset,
                                    checkpoint_dir=checkpoints, stream=sys.stdout, callbacks=[watcher])
    print(f"{args.variant}: ResNet-{result.hparams.depth}, {args.minutes:g} min, {result.steps_done} steps, "
          f"{result.images_per_second:,.0f} img/s; {measured_on}:", flush=True)
    named = {"last weights": [tf.identity(v) for v in model.trainable_weights], **watcher.averages()}
    batchnorm_batches = make_dataset(train_files, tft_output, hparams.batch_size, True, hparams).take(BATCHNORM_BATCHES)
    eval_ds = make_dataset(eval_files, tft_output, 256, False, hparams)
    score_weights(model, named, batchnorm_batches, eval_ds, dataset.num_classes)


if __name__ == "__main__":
    main()
