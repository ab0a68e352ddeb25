"""TFX Trainer entry point: unpack ``FnArgs`` and call the plain training functions."""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
import tempfile
from typing import Sequence

from cifar_tfx.data.datasets import get_dataset
from cifar_tfx.trainer.hparams import HParams

HPARAMS_KEY = "hparams"
DATASET_KEY = "dataset"


def checkpoint_dir_for(model_run_dir: str, hparams: HParams, train_files: Sequence[str],
                       transform_output: str) -> str:
    """The checkpoint folder of one training: found again only by an attempt with the same inputs.

    The key hashes the hyperparameters and the URIs of the input artifacts (examples
    and transform graph). A retried or re-run Trainer on the same artifacts (a crash,
    a Kubeflow retry) resumes; a run whose ExampleGen or Transform ran again (new data,
    ``--no-cache``, a new Kubeflow run) has new artifact URIs and starts from scratch,
    so a finished training is never handed to a new one. The folder sits beside the
    Trainer's outputs: ``<component folder>/checkpoints/<key>``, two levels above
    ``model_run_dir`` (``<root>/Trainer/model_run/<id>`` locally).
    """
    identity = json.dumps({"hparams": hparams.training_key(), "train_files": sorted(train_files),
                           "transform": transform_output}, sort_keys=True)
    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    component_dir = posixpath.dirname(posixpath.dirname(model_run_dir.rstrip("/")))
    return posixpath.join(component_dir, "checkpoints", key)


def _copy_folder(source: str, destination: str) -> None:
    import tensorflow as tf

    tf.io.gfile.makedirs(destination)
    for name in os.listdir(source):
        tf.io.gfile.copy(os.path.join(source, name), os.path.join(destination, name), overwrite=True)
    shutil.rmtree(source, ignore_errors=True)


def run_fn(fn_args) -> None:
    """Train, write the report and TensorBoard logs, export the SavedModel to ``serving_model_dir``.

    ``fn_args.eval_files`` (the test split) stay unread: the Evaluator measures the exported model.
    """
    import tensorflow_transform as tft

    from cifar_tfx.trainer.export import export_saved_model
    from cifar_tfx.trainer.report import plot_training
    from cifar_tfx.trainer.train import train_model

    config = fn_args.custom_config
    hparams = HParams.from_json(config[HPARAMS_KEY])
    dataset = get_dataset(config[DATASET_KEY])
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    checkpoint_dir = checkpoint_dir_for(fn_args.model_run_dir, hparams, fn_args.train_files,
                                        fn_args.transform_output)
    model, result = train_model(train_files=fn_args.train_files, tft_output=tft_output, hparams=hparams,
                                dataset=dataset, checkpoint_dir=checkpoint_dir, log_dir=fn_args.model_run_dir)
    hparams = result.hparams or hparams  # a budget run's chosen depth filled in
    report = tempfile.mkdtemp(prefix="report-")  # written locally, then copied (model_run_dir may be gs://)
    plot_training(result.history, result.learning_rates, os.path.join(report, "training.png"),
                  title=f"{hparams.network_name}: {result.steps_done:,} steps")
    with open(os.path.join(report, "training.json"), "w") as handle:
        json.dump({"steps": result.steps_done, "resumed_from_step": result.resumed_from_step,
                   "checkpoint_dir": checkpoint_dir, "elapsed_seconds": result.elapsed_seconds,
                   "images_per_second": result.images_per_second,
                   "precision": result.runtime.precision, "xla": result.runtime.xla,
                   "dataset": dataset.name, "network": hparams.network_name, "hparams": hparams.training_values(),
                   "network_choice": result.network_choice},
                  handle, indent=2)
    _copy_folder(report, os.path.join(fn_args.model_run_dir, "report"))
    export_saved_model(model, tft_output, dataset.class_names, fn_args.serving_model_dir,
                       warmup_image_shape=(dataset.height, dataset.width, dataset.channels),
                       test_time_flip=hparams.test_time_flip, test_time_shift=hparams.test_time_shift)
