"""What a user would lose at the serving end: the Evaluator's baseline, the numbering and placement of
published versions, a request without a label, and the data fingerprint that keeps Kubeflow's cache honest."""

import json
import os
import tempfile

import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("tfx")

from tfx.components.evaluator import executor as evaluator_executor  # noqa: E402
from tfx.types import standard_artifacts, standard_component_specs  # noqa: E402

from cifar_tfx.components import evaluator as gated  # noqa: E402
from cifar_tfx.components import serving_pusher  # noqa: E402
from cifar_tfx.components.gate import GATE_FILE, Metrics, read_gate_record  # noqa: E402
from cifar_tfx.example_format import IMAGE_KEY, LABEL_KEY, encode_png  # noqa: E402

NAMES = ("cat", "dog", "frog")


def _artifact(kind, uri, artifact_id=0):
    artifact = kind()
    artifact.uri = str(uri)
    if artifact_id:
        artifact.id = artifact_id
    return artifact


def _evaluate(tmp_path, monkeypatch, measured, with_baseline=True):
    """Run the GatedEvaluator's executor with TFMA's measuring replaced by ``measured`` (by model name)."""
    monkeypatch.setattr(evaluator_executor.Executor, "Do", lambda self, inputs, outputs, properties: None)
    monkeypatch.setattr(gated, "measured", lambda uri, names, model_name=None: measured[model_name])
    monkeypatch.setattr(gated, "confusion_counts", lambda uri, classes, model_name=None: None)
    inputs = {standard_component_specs.MODEL_KEY: [_artifact(standard_artifacts.Model, tmp_path / "candidate", 7)],
              standard_component_specs.EXAMPLES_KEY: []}
    if with_baseline:
        inputs[standard_component_specs.BASELINE_MODEL_KEY] = [
            _artifact(standard_artifacts.Model, tmp_path / "last-blessed", 3)]
    evaluation = _artifact(standard_artifacts.ModelEvaluation, tmp_path / "evaluation")
    blessing = _artifact(standard_artifacts.ModelBlessing, tmp_path / "blessing")
    os.makedirs(evaluation.uri)
    properties = {"min_accuracy": 0.5, "max_regression": 0.02, "min_class_accuracy": 0.1,
                  "class_names": json.dumps(NAMES), "baseline_serving_dir": "", "baseline_model_name": ""}
    gated.GatedEvaluatorExecutor().Do(inputs, {standard_component_specs.EVALUATION_KEY: [evaluation],
                                               standard_component_specs.BLESSING_KEY: [blessing]}, properties)
    with open(os.path.join(evaluation.uri, GATE_FILE)) as handle:
        return read_gate_record(handle.read()), blessing


def test_the_regression_bound_compares_with_the_baselines_own_accuracy(tmp_path, monkeypatch):
    candidate = Metrics(0.80, {"cat": 0.7, "dog": 0.8, "frog": 0.9})
    baseline = Metrics(0.90, {"cat": 0.9, "dog": 0.9, "frog": 0.9})
    (bounds, seen_candidate, seen_baseline, decision), blessing = _evaluate(
        tmp_path, monkeypatch, {gated.CANDIDATE: candidate, gated.BASELINE: baseline})
    assert (seen_candidate, seen_baseline) == (candidate, baseline)
    assert (bounds.min_accuracy, bounds.max_regression, bounds.min_class_accuracy) == (0.5, 0.02, 0.1)
    assert not decision.blessed and decision.failures[0].startswith("max-regression failed")
    assert blessing.get_int_custom_property("blessed") == 0
    assert blessing.get_string_custom_property("baseline_model") == str(tmp_path / "last-blessed")


def test_without_a_baseline_the_candidate_alone_is_measured(tmp_path, monkeypatch):
    candidate = Metrics(0.80, {"cat": 0.05, "dog": 0.8, "frog": 0.9})
    (_, _, seen_baseline, decision), _ = _evaluate(tmp_path, monkeypatch, {None: candidate}, with_baseline=False)
    assert seen_baseline is None
    assert decision.failures == ("min-class-accuracy failed on cat: accuracy 0.0500 < 0.1000",)


def _saved_model(folder):
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "variables.index").write_bytes(b"index")
    return str(folder)


def test_after_old_versions_are_pruned_the_next_version_is_a_new_number(tmp_path):
    model_dir = tmp_path / "serving" / "cifar10"
    for kept in (3, 4):  # 1 and 2 were pruned
        _saved_model(model_dir / str(kept))
        (model_dir / str(kept) / "saved_model.pb").write_bytes(b"kept %d" % kept)
    published = serving_pusher.publish_version(_saved_model(tmp_path / "new"), str(tmp_path / "serving"), "cifar10")
    assert (published.version, published.path) == (5, str(model_dir / "5"))
    assert [(model_dir / str(v) / "saved_model.pb").read_bytes() for v in (3, 4, 5)] == [b"kept 3", b"kept 4",
                                                                                          b"graph"]
    assert serving_pusher.publish_version(str(tmp_path / "new"), str(tmp_path / "serving"), "cifar10").version == 6


def test_a_version_is_staged_beside_the_versions_so_its_rename_stays_on_one_filesystem(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"  # what $TMPDIR names: often another filesystem than the serving volume
    elsewhere.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(elsewhere))
    renames = []
    real_rename = os.rename

    def recording_rename(source, target):
        renames.append((str(source), str(target)))
        return real_rename(source, target)

    monkeypatch.setattr(serving_pusher.os, "rename", recording_rename)
    model_dir = str(tmp_path / "serving" / "cifar10")
    serving_pusher.publish_version(_saved_model(tmp_path / "new"), str(tmp_path / "serving"), "cifar10")
    [(source, target)] = [pair for pair in renames if pair[1] == os.path.join(model_dir, "1")]
    assert os.path.dirname(source) == model_dir
    assert os.path.basename(source).startswith(serving_pusher.STAGING_PREFIX)
    assert os.listdir(elsewhere) == []


class _FakeTransform:
    """The two calls ``ServingModule`` makes of a ``TFTransformOutput``: the raw spec holds the label, as
    the real one does (the schema has it), and the layer turns PNG bytes into the network's input."""

    def raw_feature_spec(self):
        return {IMAGE_KEY: tf.io.FixedLenFeature([1], tf.string), LABEL_KEY: tf.io.FixedLenFeature([1], tf.int64)}

    def transform_features_layer(self):
        def layer(raw):
            images = tf.map_fn(lambda png: tf.io.decode_png(png[0], channels=3), raw[IMAGE_KEY],
                               fn_output_signature=tf.TensorSpec([8, 8, 3], tf.uint8))
            return {"image_xf": tf.cast(images, tf.float32) / 255.0}

        return layer


def test_serving_default_answers_an_example_without_a_label(tmp_path):
    import numpy as np
    import tf_keras as keras

    from cifar_tfx.trainer.export import ServingModule

    model = keras.Sequential([keras.layers.Flatten(input_shape=(8, 8, 3)),
                              keras.layers.Dense(len(NAMES), activation="softmax")])
    module = ServingModule(model, _FakeTransform(), NAMES)
    image = np.full((8, 8, 3), 120, np.uint8)
    unlabelled = tf.train.Example(features=tf.train.Features(feature={
        IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[encode_png(image)]))}))
    answer = module.serve_examples(tf.constant([unlabelled.SerializeToString()]))
    assert answer["probabilities"].shape == (1, len(NAMES))
    assert answer["class_name"].numpy()[0].decode() in NAMES


def test_the_kubeflow_data_fingerprint_changes_with_the_listing_at_the_same_path(monkeypatch):
    from cifar_tfx.data import reader
    from cifar_tfx.kubeflow.run_request import data_fingerprint

    listings = iter(["train.gz:100:1700000000", "train.gz:140:1700000500"])
    monkeypatch.setattr(reader, "source_fingerprint", lambda path: next(listings))
    first, why = data_fingerprint("gs://bucket/data")
    second, _ = data_fingerprint("gs://bucket/data")
    assert why == "" and first.startswith("sha256:")
    assert first != second, "new data at the same path must not be served from KFP's cache"


def test_the_pusher_checks_with_the_class_names_and_latency_bound_it_is_handed(tmp_path, monkeypatch):
    from tfx.proto import pusher_pb2
    from tfx.utils import proto_utils

    checks = []
    monkeypatch.setattr(serving_pusher, "run_check", lambda path, names, latency: checks.append(
        (names, latency)) or {"ok": False, "reason": "too slow"})
    model = _artifact(standard_artifacts.Model, tmp_path / "model")
    _saved_model(tmp_path / "model" / "Format-Serving")
    blessing = _artifact(standard_artifacts.ModelBlessing, tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", 1)
    pushed = _artifact(standard_artifacts.PushedModel, tmp_path / "pushed")
    destination = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(
        base_directory=str(tmp_path / "serving" / "cats")))
    serving_pusher.ServingDirPusherExecutor().Do(
        {"model": [model], "model_blessing": [blessing]}, {"pushed_model": [pushed]},
        {"push_destination": proto_utils.proto_to_json(destination),
         "custom_config": json.dumps({"class_names": list(NAMES), "max_latency_ms": 1234.0})})
    assert checks == [(list(NAMES), 1234.0)]
    assert pushed.get_int_custom_property("pushed") == 0 and not (tmp_path / "serving").exists()
