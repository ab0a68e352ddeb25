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


def _tiny_saved_model(folder, classes, names):
    """A SavedModel with both signatures answering uniform probabilities over ``classes``."""
    import tensorflow as tf

    from cifar_tfx.trainer.warmup import write_warmup_requests

    class Tiny(tf.Module):
        def _answer(self, batch):
            return {"probabilities": tf.fill([batch, classes], 1.0 / classes),
                    "class_id": tf.zeros([batch], tf.int64), "class_name": tf.fill([batch], names[0])}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
        def images(self, images):
            return self._answer(tf.shape(images)[0])

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def examples(self, examples):
            return self._answer(tf.shape(examples)[0])

    module = Tiny()
    tf.saved_model.save(module, folder, signatures={"serving_images": module.images.get_concrete_function(),
                                                    "serving_default": module.examples.get_concrete_function()})
    write_warmup_requests(folder, (32, 32, 3))
    return folder


def _push_checked(tmp_path, classes):
    from cifar_tfx.data.datasets import CIFAR10

    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    _tiny_saved_model(str(tmp_path / "model" / "Format-Serving"), classes, CIFAR10.class_names)
    blessing = standard_artifacts.ModelBlessing()
    blessing.set_int_custom_property("blessed", 1)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    destination = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(
        base_directory=str(tmp_path / "serving" / "cifar10")))
    config = {"class_names": list(CIFAR10.class_names), "max_latency_ms": 5000.0}
    ServingDirPusherExecutor().Do({"model": [model], "model_blessing": [blessing]}, {"pushed_model": [pushed]},
                                  {"push_destination": proto_utils.proto_to_json(destination),
                                   "custom_config": json.dumps(config)})
    return pushed


def test_a_model_that_answers_the_wrong_shape_is_refused_before_the_serving_folder(tmp_path):
    pushed = _push_checked(tmp_path, classes=3)
    assert pushed.get_int_custom_property("pushed") == 0
    assert "answers probabilities of shape (1, 3), expected (1, 10)" in \
        pushed.get_string_custom_property("serving_check")
    assert not (tmp_path / "serving").exists()


def test_a_servable_model_passes_the_check_and_is_published(tmp_path):
    pushed = _push_checked(tmp_path, classes=10)
    assert pushed.get_string_custom_property("serving_check") == "passed"
    assert pushed.get_int_custom_property("pushed") == 1
    assert (tmp_path / "serving" / "cifar10" / "1" / "assets.extra" / "tf_serving_warmup_requests").exists()


def test_check_refuses_a_folder_without_a_model(tmp_path):
    from cifar_tfx.serving.check import run_check

    verdict = run_check(str(tmp_path), ["a", "b"], 1000.0)
    assert verdict["ok"] is False and "does not load" in verdict["reason"]
