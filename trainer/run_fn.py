"""TFX Trainer entry point: unpack ``FnArgs`` and call the plain training functions."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from cifar_tfx.data.datasets import get_dataset
from cifar_tfx.trainer.hparams import HParams

HPARAMS_KEY = "hparams"
DATASET_KEY = "dataset"
CHECKPOINT_DIR_KEY = "checkpoint_dir"


def _copy_folder(source: str, destination: str) -> None:
    import tensorflow as tf

    tf.io.gfile.makedirs(destination)
    for name in os.listdir(source):
        tf.io.gfile.copy(os.path.join(source, name), os.path.join(destination, name), overwrite=True)
    shutil.rmtree(source, ignore_errors=True)


def run_fn(fn_args) -> None:
    """Train, write the report and TensorBoard logs, export the SavedModel to ``serving_model_dir``."""
    import tensorflow_transform as tft

    from cifar_tfx.trainer.export import export_saved_model
    from cifar_tfx.trainer.report import plot_confusion, plot_training
    from cifar_tfx.trainer.train import train_model

    config = fn_args.custom_config
    hparams = HParams.from_json(config[HPARAMS_KEY])
    dataset = get_dataset(config[DATASET_KEY])
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    model, result = train_model(
        train_files=fn_args.train_files, eval_files=fn_args.eval_files, tft_output=tft_output,
        hparams=hparams, dataset=dataset, checkpoint_dir=config[CHECKPOINT_DIR_KEY],
        log_dir=fn_args.model_run_dir)
    report = tempfile.mkdtemp(prefix="report-")  # written locally, then copied (model_run_dir may be gs://)
    plot_training(result.history, result.learning_rates, os.path.join(report, "training.png"),
                  title=f"ResNet-{hparams.depth}: eval accuracy {result.eval_accuracy:.2%}")
    plot_confusion(result.confusion, dataset.class_names, os.path.join(report, "confusion.png"),
                   title=f"test split, {int(result.confusion.sum())} images")
    with open(os.path.join(report, "training.json"), "w") as handle:
        json.dump({"steps": result.steps_done, "elapsed_seconds": result.elapsed_seconds,
                   "images_per_second": result.images_per_second, "eval_accuracy": result.eval_accuracy,
                   "precision": result.runtime.precision, "xla": result.runtime.xla,
                   "hparams": json.loads(hparams.to_json())}, handle, indent=2)
    _copy_folder(report, os.path.join(fn_args.model_run_dir, "report"))
    export_saved_model(model, tft_output, dataset.class_names, fn_args.serving_model_dir)
