"""The gate's decision (every branch, every boundary), the blessing it writes and the Pusher's obedience to it."""

import dataclasses
import json
import math
import os
import pathlib
import shutil
import subprocess
import tempfile

import pytest

pytest.importorskip("tfx")

from tfx.proto import pusher_pb2  # noqa: E402
from tfx.types import standard_artifacts  # noqa: E402
from tfx.utils import proto_utils  # noqa: E402

from cifar_tfx.components.serving_pusher import ServingDirPusherExecutor  # noqa: E402
from cifar_tfx.components.gate import Bounds, Decision, Metrics, decide, gate_record, read_gate_record  # noqa: E402


BOUNDS = Bounds(min_accuracy=0.90, max_regression=0.01, min_class_accuracy=0.0)


def test_the_absolute_bound_blesses_at_and_above_it_only():
    assert decide(Metrics(0.90), None, BOUNDS) == Decision(True, ())
    assert decide(Metrics(0.9001), None, BOUNDS).blessed
    refused = decide(Metrics(0.8999), None, BOUNDS)
    assert refused == Decision(False, ("min-accuracy failed: accuracy 0.8999 < 0.9000",))


def test_the_regression_bound_compares_with_the_baseline_only_when_there_is_one():
    assert decide(Metrics(0.91), Metrics(0.92), BOUNDS).blessed            # 0.01 below: allowed
    refused = decide(Metrics(0.91), Metrics(0.9201), BOUNDS)               # 0.0101 below
    assert refused == Decision(False, ("max-regression failed: accuracy 0.9100 is 0.0101 below the last "
                                       "blessed model's 0.9201, allowed 0.0100",))
    assert decide(Metrics(0.91), None, BOUNDS).blessed, "the first model has nothing to regress from"
    assert decide(Metrics(0.99), Metrics(0.95), BOUNDS).blessed, "better than the baseline"


def test_per_class_bounds_name_every_class_below_them():
    classes = {"cat": 0.70, "dog": 0.6999, "ship": 0.95}
    assert decide(Metrics(0.95, classes), None, BOUNDS).blessed, "0 means no per-class bound"
    refused = decide(Metrics(0.95, classes), None, Bounds(0.90, 0.01, min_class_accuracy=0.70))
    assert refused.failures == ("min-class-accuracy failed on dog: accuracy 0.6999 < 0.7000",)


def test_every_failed_bound_is_reported_in_order_and_nan_clears_none():
    both = decide(Metrics(0.5, {"cat": 0.1}), Metrics(0.9), Bounds(0.6, 0.01, 0.2))
    assert [line.split(":")[0] for line in both.failures] == [
        "min-accuracy failed", "max-regression failed", "min-class-accuracy failed on cat"]
    nan = decide(Metrics(math.nan, {"cat": math.nan}), Metrics(0.5), Bounds(0.0, 1.0, 0.1))
    assert not nan.blessed and len(nan.failures) == 3


def test_bounds_outside_zero_to_one_are_refused():
    for fields in ({"min_accuracy": 1.5}, {"max_regression": -0.1}, {"min_class_accuracy": math.nan}):
        with pytest.raises(ValueError, match="must be within"):
            Bounds(**{**dataclasses.asdict(BOUNDS), **fields})


def test_the_gate_record_round_trips_what_was_applied():
    candidate, baseline = Metrics(0.91, {"cat": 0.8, "dog": math.nan}), Metrics(0.92)
    decision = decide(candidate, baseline, BOUNDS)
    bounds, read_candidate, read_baseline, read_decision = read_gate_record(
        gate_record(BOUNDS, candidate, baseline, decision))
    assert (bounds, read_baseline, read_decision) == (BOUNDS, baseline, decision)
    assert read_candidate.accuracy == 0.91 and math.isnan(read_candidate.class_accuracy["dog"])


def test_the_confusion_matrix_is_read_from_tfmas_sparse_entries_with_zero_fields_left_out(tmp_path):
    from cifar_tfx.pipeline.evaluation import confusion_record, counts_from_entries
    from cifar_tfx.reporting.outcome import read_confusion

    # As TFMA's plot JSON holds them: class 0 is an absent id, -1 (nothing above the threshold) is not a class.
    entries = [{"numWeightedExamples": 5.0}, {"predictedClassId": 2, "numWeightedExamples": 1.0},
               {"actualClassId": 2, "numWeightedExamples": 3.0}, {"actualClassId": 1, "predictedClassId": 1,
                                                                  "numWeightedExamples": 7.0},
               {"actualClassId": 1, "predictedClassId": -1, "numWeightedExamples": 4.0}]
    counts = counts_from_entries(entries, 3)
    assert counts == [[5, 0, 1], [0, 7, 0], [3, 0, 0]]
    (tmp_path / "confusion.json").write_text(confusion_record(["a", "b", "c"], counts))
    assert read_confusion(str(tmp_path)) == (["a", "b", "c"], counts)
    assert read_confusion(str(tmp_path / "elsewhere")) is None


@pytest.mark.parametrize("blessed, marker, value", [(True, "BLESSED", 1), (False, "NOT_BLESSED", 0)])
def test_the_evaluator_writes_the_blessing_the_pusher_reads(tmp_path, blessed, marker, value):
    from cifar_tfx.components.evaluator import write_blessing

    model, blessing = standard_artifacts.Model(), standard_artifacts.ModelBlessing()
    model.uri, blessing.uri = str(tmp_path / "model"), str(tmp_path / "blessing")
    write_blessing(blessing, model, None, blessed)
    assert os.listdir(blessing.uri) == [marker]
    assert blessing.get_int_custom_property("blessed") == value
    assert blessing.get_string_custom_property("current_model") == model.uri


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
    assert sorted(os.listdir(tmp_path / "serving")) == [".models.config.lock", "cifar10", "models.config"]


def test_a_pushed_version_is_readable_by_another_user():
    """TF Serving may run as another user: folders 0755 and files 0644 under the usual umask 022."""
    base = pathlib.Path(tempfile.mkdtemp())  # not under pytest's 0700 folders: another user must reach it
    base.chmod(0o755)
    previous = os.umask(0o022)
    try:
        _push(base, blessed=1)
        serving = base / "serving"
        modes = {str(p.relative_to(serving)): p.stat().st_mode & 0o777 for p in [serving, *serving.rglob("*")]}
        assert modes == {".": 0o755, "cifar10": 0o755, "cifar10/1": 0o755, "cifar10/1/variables": 0o755,
                         "cifar10/1/saved_model.pb": 0o644, "cifar10/1/variables/variables.index": 0o644,
                         "models.config": 0o644, ".models.config.lock": 0o644}
        if os.geteuid() == 0:  # switching to another user takes root; the modes above are what it needs
            read = subprocess.run(["cat", str(serving / "models.config"), str(serving / "cifar10/1/saved_model.pb")],
                                  user=65534, group=65534, capture_output=True)  # nobody
            assert read.returncode == 0, read.stderr
            assert read.stdout.endswith(b"graph")
    finally:
        os.umask(previous)
        shutil.rmtree(base)


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
    assert verdict["ok"] is False and "does not load under the 'serve' tag" in verdict["reason"]


def _tiny_with_warmup_records(folder, records):
    import tensorflow as tf

    from cifar_tfx.data.datasets import CIFAR10

    _tiny_saved_model(folder, 10, CIFAR10.class_names)
    warmup = os.path.join(folder, "assets.extra", "tf_serving_warmup_requests")
    with tf.io.TFRecordWriter(warmup) as writer:
        for record in records:
            writer.write(record.SerializeToString())
    return folder


def test_check_follows_tf_servings_warmup_rules(tmp_path):
    """saved_model_warmup_util.h: more than 1,000 records and the version does not load; a record that is
    not a predict log is refused by name, not a traceback."""
    import tensorflow as tf
    from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_log_pb2

    from cifar_tfx.data.datasets import CIFAR10
    from cifar_tfx.serving.check import MAX_WARMUP_RECORDS, check_saved_model

    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = "serving_images"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto([b"png"], dtype=tf.string))
    predict = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    classify = prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(
        request=classification_pb2.ClassificationRequest()))
    verdict = check_saved_model(_tiny_with_warmup_records(str(tmp_path / "ok"), [predict] * 3), CIFAR10.class_names, 5000)
    assert verdict["ok"], verdict
    assert any("REST JSON" in line for line in verdict["checked"]) and "TF Serving itself not run" in verdict["checked"][-1]
    too_many = _tiny_with_warmup_records(str(tmp_path / "many"), [predict] * (MAX_WARMUP_RECORDS + 1))
    assert "more than 1000 records" in check_saved_model(too_many, CIFAR10.class_names, 5000)["reason"]
    other = _tiny_with_warmup_records(str(tmp_path / "classify"), [predict, classify])
    assert check_saved_model(other, CIFAR10.class_names, 5000)["reason"] == \
        "warm-up record 2 is a classify_log; this check replays predict_log only"


def test_the_rest_encoding_is_tf_servings(tmp_path):
    """json_tensor.cc: binary strings travel as {"b64": ...}; one input's instances are its values."""
    import numpy as np

    from cifar_tfx.serving.check import decode_rest_body, rest_body

    images = np.array([b"\x89PNG\xff", b"\x00"], dtype=object)
    body = json.loads(rest_body("serving_images", {"images": images}))
    assert body == {"signature_name": "serving_images", "instances": [{"b64": "iVBOR/8="}, {"b64": "AA=="}]}
    assert decode_rest_body(json.dumps(body), ["images"]) == {"images": [b"\x89PNG\xff", b"\x00"]}


FAKE_SERVER = r'''#!{python}
"""A stand-in for tensorflow_model_server: its flags, its REST status and predict APIs, no TensorFlow."""
import argparse, json, os, re, sys, http.server

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--rest_api_port", type=int, required=True)
parser.add_argument("--model_config_file", required=True)
args = parser.parse_args()
mode = os.environ.get("FAKE_TF_SERVING_MODE", "ok")
if mode == "exit":
    print("Invalid argument: failed to parse --model_config_file", flush=True)
    sys.exit(1)
config = open(args.model_config_file).read()
name = re.search(r'name: "([^"]+)"', config).group(1)
base_path = re.search(r'base_path: "([^"]+)"', config).group(1)
loadable = os.path.exists(os.path.join(base_path, "1", "saved_model.pb")) and mode != "fail_load"
error = {{"error_code": "OK", "error_message": ""}} if loadable else {{
    "error_code": "NOT_FOUND", "error_message": "Could not find meta graph def matching supplied tags: {{ serve }}"}}

class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, code, payload):
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path != f"/v1/models/{{name}}":
            return self.reply(404, {{"error": "Could not find any versions of model"}})
        state = "AVAILABLE" if loadable else "END"
        self.reply(200, {{"model_version_status": [{{"version": "1", "state": state, "status": error}}]}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        count = len(body["instances"]) - (1 if mode == "wrong_count" else 0)
        rows = [{{"probabilities": [0.1] * 10, "class_id": 0, "class_name": "airplane"}}] * count
        self.reply(200, {{"predictions": rows}})

http.server.HTTPServer(("127.0.0.1", args.rest_api_port), Handler).serve_forever()
'''


@pytest.mark.parametrize("mode, reason", [
    ("ok", ""),
    ("fail_load", "tensorflow_model_server did not load the model: NOT_FOUND: Could not find meta graph def"),
    ("exit", "tensorflow_model_server exited 1 before loading the model: Invalid argument"),
    ("wrong_count", "answered 7 predictions for 8 images"),
])
def test_check_uses_tf_serving_itself_when_its_binary_is_there(tmp_path, monkeypatch, mode, reason):
    """InfraValidator-style: the binary serves the candidate from a models.config of its own and answers
    the warm-up images over REST. The stand-in takes TF Serving's flags and answers its REST API."""
    import sys

    from cifar_tfx.data.datasets import CIFAR10
    from cifar_tfx.serving.check import check_saved_model

    folder = _tiny_saved_model(str(tmp_path / "model"), 10, CIFAR10.class_names)
    binary = tmp_path / "bin" / "tensorflow_model_server"
    binary.parent.mkdir()
    binary.write_text(FAKE_SERVER.format(python=sys.executable))
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", f"{binary.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_TF_SERVING_MODE", mode)
    verdict = check_saved_model(folder, CIFAR10.class_names, 5000.0)
    assert verdict["ok"] is (mode == "ok"), verdict
    assert reason in verdict["reason"]
    if mode == "ok":
        assert "tensorflow_model_server loaded it and answered 8 warm-up image(s)" in verdict["checked"][-1]
