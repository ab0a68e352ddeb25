"""Kubeflow Pipelines (KFP 2) compilation of the pipeline (imported as ``cifar_tfx.kubeflow``)."""
