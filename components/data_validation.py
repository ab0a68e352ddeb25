"""Two small components around TFDV: pin the inferred schema, and stop on anomalies.

(No ``from __future__ import annotations`` here: TFX reads the component
functions' annotations as real types.)

``SchemaGen`` infers types and presence from statistics but no integer domains, so
:func:`PinSchema` adds what we know for certain about the dataset: labels are
``0..num_classes-1`` and every image is ``height x width x channels``. ``ExampleValidator``
records anomalies but lets the pipeline go on; :func:`AnomalyGate` fails the run
with a message naming each anomaly, so nothing trains on data that broke the schema.
"""


import os
from typing import Dict, List

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import ExampleAnomalies, Schema

from cifar_tfx.example_format import CHANNELS_KEY, HEIGHT_KEY, IMAGE_KEY, LABEL_KEY, WIDTH_KEY

SCHEMA_FILE = "schema.pbtxt"
ANOMALIES_FILE = "SchemaDiff.pb"


class DataAnomalyError(RuntimeError):
    """ExampleValidator found anomalies; the message lists them."""


def pin_schema_proto(schema, num_classes: int, height: int, width: int, channels: int):
    """Return a copy of ``schema`` with label and image-shape domains fixed, every feature dense [1]."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    pinned = schema_pb2.Schema()
    pinned.CopyFrom(schema)
    bounds = {LABEL_KEY: (0, num_classes - 1), HEIGHT_KEY: (height, height),
              WIDTH_KEY: (width, width), CHANNELS_KEY: (channels, channels)}
    names = {feature.name: feature for feature in pinned.feature}
    missing = [name for name in list(bounds) + [IMAGE_KEY] if name not in names]
    if missing:
        raise DataAnomalyError(f"inferred schema lacks feature(s) {missing}; is this CIFAR-format data?")
    for name, (low, high) in bounds.items():
        feature = names[name]
        feature.int_domain.min = low
        feature.int_domain.max = high
    for feature in pinned.feature:
        # Exactly one value in every example: a dense feature of shape [1].
        feature.presence.min_fraction = 1.0
        feature.ClearField("value_count")
        feature.ClearField("shape")
        feature.shape.dim.add().size = 1
    return pinned


def describe_anomalies(per_split: Dict[str, object]) -> List[str]:
    """One line per anomaly: ``split: feature: short description (detail)``."""
    lines = []
    for split, anomalies in sorted(per_split.items()):
        for feature, info in sorted(anomalies.anomaly_info.items()):
            lines.append(f"{split}: {feature}: {info.short_description} ({info.description})")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            lines.append(f"{split}: dataset: {info.short_description} ({info.description})")
    return lines


@component
def PinSchema(  # noqa: N802 - TFX component names are classes
    schema: InputArtifact[Schema],
    pinned_schema: OutputArtifact[Schema],
    num_classes: Parameter[int],
    height: Parameter[int],
    width: Parameter[int],
    channels: Parameter[int],
) -> None:
    """Copy the inferred schema with label range and image shape pinned."""
    import tensorflow as tf
    import tensorflow_data_validation as tfdv

    inferred = tfdv.load_schema_text(os.path.join(schema.uri, SCHEMA_FILE))
    pinned = pin_schema_proto(inferred, num_classes, height, width, channels)
    # On an object store the folder exists implicitly; elsewhere (a volume) it may not yet.
    tf.io.gfile.makedirs(pinned_schema.uri)
    tfdv.write_schema_text(pinned, os.path.join(pinned_schema.uri, SCHEMA_FILE))


@component
def AnomalyGate(anomalies: InputArtifact[ExampleAnomalies]) -> None:  # noqa: N802
    """Raise :class:`DataAnomalyError` naming every anomaly ExampleValidator found."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2
    from tfx.utils import io_utils

    per_split = {}
    for split in artifact_utils.decode_split_names(anomalies.split_names):
        path = os.path.join(artifact_utils.get_split_uri([anomalies], split), ANOMALIES_FILE)
        per_split[split] = anomalies_pb2.Anomalies.FromString(io_utils.read_bytes_file(path))
    problems = describe_anomalies(per_split)
    if problems:
        raise DataAnomalyError("data validation found anomalies:\n  " + "\n  ".join(problems))
