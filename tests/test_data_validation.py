"""The pinned schema catches wrong labels and image shapes; the gate names each anomaly."""

import pytest

tfdv = pytest.importorskip("tensorflow_data_validation")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tfx.types import standard_artifacts  # noqa: E402

from cifar_tfx.components.data_validation import (  # noqa: E402
    AnomalyGate, DataAnomalyError, describe_anomalies, pin_schema_proto,
)
from cifar_tfx.example_format import serialize_batch  # noqa: E402


def _stats(tmp_path, name, images, labels):
    path = str(tmp_path / f"{name}.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for record in serialize_batch(images, labels):
            writer.write(record)
    return tfdv.generate_statistics_from_tfrecord(path)


@pytest.fixture(scope="module")
def pinned(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("schema")
    rng = np.random.default_rng(0)
    good = _stats(tmp, "good", rng.integers(0, 255, (20, 32, 32, 3), dtype=np.uint8), np.arange(20) % 10)
    return pin_schema_proto(tfdv.infer_schema(good), 10, 32, 32, 3)


def test_good_data_has_no_anomalies(pinned, tmp_path):
    stats = _stats(tmp_path, "ok", np.zeros((5, 32, 32, 3), np.uint8), np.array([0, 9, 3, 3, 1]))
    assert not tfdv.validate_statistics(stats, pinned).anomaly_info


def test_label_outside_domain_and_wrong_image_size_are_named(pinned, tmp_path):
    stats = _stats(tmp_path, "bad", np.zeros((4, 28, 28, 3), np.uint8), np.array([0, 1, 12, 2]))
    anomalies = tfdv.validate_statistics(stats, pinned)
    assert set(anomalies.anomaly_info) == {"label", "height", "width"}
    lines = describe_anomalies({"train": anomalies})
    assert any(line.startswith("train: label: ") for line in lines)


def test_gate_raises_naming_the_anomaly(pinned, tmp_path):
    stats = _stats(tmp_path, "bad", np.zeros((2, 32, 32, 1), np.uint8), np.array([0, 1]))
    anomalies = tfdv.validate_statistics(stats, pinned)
    artifact = standard_artifacts.ExampleAnomalies()
    artifact.uri = str(tmp_path / "anomalies")
    artifact.split_names = '["train"]'
    (tmp_path / "anomalies" / "Split-train").mkdir(parents=True)
    (tmp_path / "anomalies" / "Split-train" / "SchemaDiff.pb").write_bytes(anomalies.SerializeToString())
    with pytest.raises(DataAnomalyError, match="train: channels: "):
        AnomalyGate.test_call(anomalies=artifact)
    empty = type(anomalies)()
    (tmp_path / "anomalies" / "Split-train" / "SchemaDiff.pb").write_bytes(empty.SerializeToString())
    AnomalyGate.test_call(anomalies=artifact)  # no anomalies: passes
