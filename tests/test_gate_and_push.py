"""The gate's bounds and the Pusher's obedience to the blessing, without running a pipeline."""

import json
import os

import pytest

pytest.importorskip("tfx")

import tensorflow_model_analysis as tfma  # noqa: E402
from tfx.proto import pusher_pb2  # noqa: E402
from tfx.types import standard_artifacts  # noqa: E402
from tfx.utils import proto_utils  # noqa: E402

from cifar_tfx.components.serving_pusher import ServingDirPusherExecutor  # noqa: E402
from cifar_tfx.pipeline.evaluation import ACCURACY, make_eval_config  # noqa: E402


def test_gate_bounds_are_exactly_the_hparams():
    config = make_eval_config(0.93, 0.005)
    [spec] = config.metrics_specs
    gated = [m for m in spec.metrics if m.per_slice_thresholds]
    assert [m.class_name for m in gated] == ["SparseCategoricalAccuracy"]
    [per_slice] = gated[0].per_slice_thresholds
    assert list(per_slice.slicing_specs) == [tfma.SlicingSpec()], "the bound applies to the overall slice only"
    assert per_slice.threshold.value_threshold.lower_bound.value == pytest.approx(0.93, abs=1e-12)
    assert not per_slice.threshold.value_threshold.HasField("upper_bound")
    change = per_slice.threshold.change_threshold
    assert change.absolute.value == pytest.approx(-0.005, abs=1e-12)
    assert change.direction == tfma.MetricDirection.HIGHER_IS_BETTER
    assert config.model_specs[0].signature_name == "serving_default"
    assert ACCURACY == "sparse_categorical_accuracy"


def _push(tmp_path, blessed):
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    saved = tmp_path / "model" / "Format-Serving"
    (saved / "variables").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"graph")
    (saved / "variables" / "variables.index").write_bytes(b"index")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", blessed)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    destination = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(
        base_directory=str(tmp_path / "serving" / "cifar10")))
    ServingDirPusherExecutor().Do({"model": [model], "model_blessing": [blessing]}, {"pushed_model": [pushed]},
                                  {"push_destination": proto_utils.proto_to_json(destination),
                                   "custom_config": json.dumps({})})
    return pushed


def test_unblessed_model_touches_nothing(tmp_path):
    pushed = _push(tmp_path, blessed=0)
    assert pushed.get_int_custom_property("pushed") == 0
    assert not (tmp_path / "serving").exists()


def test_blessed_model_becomes_version_1(tmp_path):
    pushed = _push(tmp_path, blessed=1)
    assert pushed.get_int_custom_property("pushed") == 1
    assert pushed.get_string_custom_property("pushed_version") == "1"
    version = tmp_path / "serving" / "cifar10" / "1"
    assert (version / "saved_model.pb").read_bytes() == b"graph"
    assert sorted(os.listdir(tmp_path / "serving")) == ["cifar10", "models.config"]
