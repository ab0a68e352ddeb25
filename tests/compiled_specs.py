"""The ``kfp`` spec the spec-execution tests run: compiled for data and models on two volumes."""

import pathlib

from cifar_tfx.data.datasets import CIFAR10
from cifar_tfx.data.synth import write_dataset
from cifar_tfx.kubeflow.compiler import KubeflowTarget, VolumeMount, compile_pipeline
from cifar_tfx.trainer.hparams import DEMO


def compile_on_volumes(folder: pathlib.Path):
    """``(spec path, models folder)``: the demo profile's spec, its data (500 + 100 synthetic images) and
    serving folder on the volumes ``cifar-data`` and ``tf-serving``, all under ``folder``."""
    data, models = folder / "volumes" / "data", folder / "volumes" / "models"
    write_dataset(str(data), train=500, test=100, seed=11)
    models.mkdir(parents=True)
    spec_path = str(folder / "pipeline.yaml")
    target = KubeflowTarget(image="registry.example/cifar-tfx:1", pipeline_root="gs://bucket/root",
                            data_path=str(data), serving_dir=str(models), trainer_gpus=1, allow_cpu_fallback=True,
                            data_volume=VolumeMount("cifar-data", str(data)),
                            serving_volume=VolumeMount("tf-serving", str(models)))
    compile_pipeline(target, CIFAR10, DEMO, spec_path)
    return spec_path, models


