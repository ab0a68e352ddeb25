"""What each budget lever buys: train the same data for the same wall-clock budget, one lever at a time.

    .venv/bin/python -m benchmarks.budget_levers --pipeline-root runs/pipeline --dataset fashion_mnist \
        --minutes 3 [--variants seed step-d14 linear-d14 linear-ls-d14 linear-cut8-d14 budget]
    .venv/bin/python -m benchmarks.budget_levers ... --variants budget-d20 budget-d20:nesterov=on,learning_rate=0.4

A variant is a name from :func:`variants`, optionally followed by ``:field=value[,field=value]``
overrides of :class:`~cifar_tfx.trainer.hparams.HParams` fields (numbers and plain strings).

Reads the newest ExampleGen examples and Transform graph of a pipeline root that
has run once (``cifar-tfx run --data ... --pipeline-root ...``), then trains each
variant with :func:`cifar_tfx.trainer.train.train_model`, one after the other in one
process, and prints the steps, images/s and accuracy of each under every test-time view
(:data:`VIEWS`: the same trained weights evaluated each way). While a variant trains, its progress
lines (the depth choice, steps, images/s, learning rate, once a minute) come as they are written,
each prefixed with the variant's spec. Nothing else should run on the machine meanwhile: the budget
is wall-clock time.

Levers are chosen on a validation split, not on the test set: by default every
``len(train) / --validation-images``-th training record (5,000 of CIFAR-10's 50,000) is held
out, written once under ``<pipeline root>/lever-validation/``, and the variants train on the
rest; the test split is not read. ``--validation-images 0`` trains on the whole training
split and reports test accuracy (a reported run: read the test set once per run).
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import io
import os
import sys
import tempfile
from typing import TextIO

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def variants(minutes: float, dataset):
    """name -> HParams: the seed's rule, then one lever added at a time, then the budget profile
    (as the command line would give it on ``dataset``)."""
    from cifar_tfx.trainer.hparams import BUDGET, FULL, profile_for_dataset, with_overrides

    seed = with_overrides(FULL, time_budget_minutes=minutes)   # ResNet-56, drops at 1/2 and 3/4
    step = {depth: dataclasses.replace(seed, depth=depth) for depth in (8, 14, 20, 32)}
    result = {"seed": seed}
    for depth, hparams in step.items():
        linear = dataclasses.replace(hparams, lr_schedule="linear", warmup_fraction=BUDGET.warmup_fraction)
        result[f"step-d{depth}"] = hparams
        result[f"linear-d{depth}"] = linear
        result[f"linear-ls-d{depth}"] = dataclasses.replace(linear, label_smoothing=0.1)
        result[f"linear-ls-nocutout-d{depth}"] = dataclasses.replace(
            linear, label_smoothing=0.1, cutout_size=0)
        for cutout in (0, 4, 8, 12):
            result[f"linear-cut{cutout}-d{depth}"] = dataclasses.replace(linear, cutout_size=cutout)
    result["budget"] = with_overrides(profile_for_dataset("budget", dataset), time_budget_minutes=minutes)
    for depth in (8, 14, 20, 32):  # the budget profile with its depth fixed: levers compared without the probe's noise
        result[f"budget-d{depth}"] = with_overrides(result["budget"], depth=depth)
    for architecture in ("resnet", "resnet9", "airbench"):  # the budget profile on either architecture, its size probed
        result[f"budget-{architecture}"] = with_overrides(result["budget"], architecture=architecture)
    return result


VIEWS = {"plain": (False, 0), "flip": (True, 0), "flip+shift1": (True, 1), "flip+shift2": (True, 2)}
VALIDATION_FOLDER = "lever-validation"


def carve_validation(train_files, folder: str, validation_images: int):
    """``(train files, validation files)``: every k-th record of ``train_files`` held out, k =
    records // ``validation_images``; written once to ``folder`` and reused."""
    import tensorflow as tf

    paths = {name: os.path.join(folder, f"{name}.tfrecord.gz") for name in ("train", "validation")}
    marker = os.path.join(folder, f"DONE-{validation_images}")
    if not os.path.exists(marker):
        records = list(tf.data.TFRecordDataset(train_files, compression_type="GZIP").as_numpy_iterator())
        every = len(records) // validation_images
        if every < 2:
            raise SystemExit(f"--validation-images {validation_images} leaves too little of {len(records)} to train on")
        os.makedirs(folder, exist_ok=True)
        options = tf.io.TFRecordOptions(compression_type="GZIP")
        with tf.io.TFRecordWriter(paths["train"], options) as train, \
                tf.io.TFRecordWriter(paths["validation"], options) as validation:
            held = 0
            for index, record in enumerate(records):
                if index % every == 0 and held < validation_images:
                    validation.write(record)
                    held += 1
                else:
                    train.write(record)
        open(marker, "w").close()
    return [paths["train"]], [paths["validation"]]


def resolve_variant(spec: str, table):
    """``name`` or ``name:field=value,...`` -> HParams; SystemExit naming what is unknown."""
    from cifar_tfx.trainer.hparams import SWITCH, value_kind

    name, _, overrides = spec.partition(":")
    if name not in table:
        raise SystemExit(f"unknown variant {name!r}; known: {', '.join(table)}")
    hparams = table[name]
    fields = {field.name: field for field in dataclasses.fields(hparams)}
    values = {}
    for item in filter(None, overrides.split(",")):
        key, sep, text = item.partition("=")
        if not sep or key not in fields:
            raise SystemExit(f"variant {spec!r}: {item!r} is not field=value with a known HParams field")
        current = getattr(hparams, key)
        if isinstance(current, bool):  # spelled as on the command line
            if text not in SWITCH:
                raise SystemExit(f"variant {spec!r}: {key} takes {' or '.join(SWITCH)}, got {text!r}")
            values[key] = SWITCH[text]
        else:
            kind = value_kind(fields[key])  # an unset field (None) still has a kind: Optional[int] is int
            values[key] = kind(text) if kind in (int, float, str) else float(text)
    return dataclasses.replace(hparams, **values)


class PrefixedLines(io.TextIOBase):
    """A text stream that writes each complete line to ``target`` as ``prefix + line``, as soon as it is
    complete: one variant's training progress, told apart from the next variant's."""

    def __init__(self, prefix: str, target: TextIO) -> None:
        super().__init__()
        self.prefix = prefix
        self.target = target
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        *complete, self._partial = (self._partial + text).split("\n")
        for line in complete:
            self.target.write(f"{self.prefix}{line}\n")
        if complete:
            self.target.flush()
        return len(text)

    def flush(self) -> None:
        self.target.flush()


def newest(pattern: str) -> str:
    found = sorted(glob.glob(pattern), key=lambda path: int(os.path.basename(path)))
    if not found:
        raise SystemExit(f"nothing matches {pattern}: run the pipeline on this root first")
    return found[-1]


def training_inputs(pipeline_root: str, validation_images: int):
    """``(tf.Transform output, train files, eval files, what the accuracy is measured on)`` from the newest
    ExampleGen and Transform outputs of ``pipeline_root``: the validation split carved from the training
    records (:func:`carve_validation`), or with ``validation_images`` 0 the whole training split and the test split."""
    import tensorflow_transform as tft

    examples = newest(os.path.join(pipeline_root, "*ExampleGen", "examples", "*"))
    tft_output = tft.TFTransformOutput(newest(os.path.join(pipeline_root, "Transform", "transform_graph", "*")))
    train_files = sorted(glob.glob(os.path.join(examples, "Split-train", "*")))
    if not validation_images:
        return tft_output, train_files, sorted(glob.glob(os.path.join(examples, "Split-test", "*"))), "test accuracy"
    train_files, eval_files = carve_validation(train_files, os.path.join(pipeline_root, VALIDATION_FOLDER),
                                               validation_images)
    return tft_output, train_files, eval_files, f"validation accuracy ({validation_images} held-out training images)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pipeline-root", required=True)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--variants", nargs="+", default=["seed", "step-d14", "linear-d14", "linear-ls-d14", "budget"])
    parser.add_argument("--validation-images", type=int, default=5000,
                        help="hold out this many training images and report accuracy on them (0: the test split)")
    args = parser.parse_args()

    import tf_keras as keras

    from cifar_tfx.data.datasets import get_dataset
    from cifar_tfx.trainer.data import make_dataset
    from cifar_tfx.trainer.train import evaluate, train_model

    dataset = get_dataset(args.dataset)
    tft_output, train_files, eval_files, measured_on = training_inputs(args.pipeline_root, args.validation_images)
    table = variants(args.minutes, dataset)
    chosen_variants = {spec: resolve_variant(spec, table) for spec in args.variants}
    for name, variant in chosen_variants.items():
        hparams = dataclasses.replace(variant, log_every_seconds=60.0)
        with tempfile.TemporaryDirectory() as tmp:
            progress = PrefixedLines(f"  [{name}] ", sys.stdout)
            model, result = train_model(train_files=train_files, eval_files=eval_files, tft_output=tft_output,
                                        hparams=hparams, dataset=dataset, checkpoint_dir=tmp, stream=progress)
            eval_ds = make_dataset(eval_files, tft_output, 256, False, hparams)
            accuracy = {view: evaluate(model, eval_ds, dataset.num_classes, flip, shift)[1]
                        for view, (flip, shift) in VIEWS.items()}
        keras.mixed_precision.set_global_policy("float32")
        chosen = " (chosen by the probe)" if hparams.network_left_to_probe else ""
        print(f"{name:>24}: {result.hparams.network_name}{chosen}, {args.minutes:g} min, {result.steps_done} steps, "
              f"{result.images_per_second:,.0f} img/s, {measured_on}: "
              + ", ".join(f"{view} {value:.4f}" for view, value in accuracy.items()), flush=True)


if __name__ == "__main__":
    main()
