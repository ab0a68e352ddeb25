"""Every hyperparameter and every gate bound a user gives reaches the place that uses it.

Parametrized over the declarations (``hparams.knobs()``): a new field is checked by every test here
without a new test. For each field a value is derived from its declaration that differs from its
default and from the profile's (``given_value``), and followed hop by hop:

* the command line (``--<name>``) gives that value to the run's ``HParams``;
* ``create_pipeline`` hands a training field to the Trainer (its ``custom_config``), a gate field to
  the component that applies it (the Evaluator's execution properties, the Pusher's ``custom_config``);
* a Kubeflow run-time parameter is a ``RuntimeParameter`` of that component, defaulting to the value,
  and a run's own value reaches the hyperparameters the Trainer trains with;
* training: ``train_model`` with nothing trained (``Model.fit`` and the evaluation recorded, not run)
  hands it on to what uses it: the network and its optimizer and loss, the schedule and the clock, the
  input pipeline with its augmentation, the runtime and the evaluation's views. A field that changes
  none of these, in a run counted in epochs nor in a budget run with its network left open and small
  crops on, fails: its value would be lost.
"""

import argparse
import dataclasses
import io
import itertools
import json

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("tfx")

import tf_keras as keras  # noqa: E402
from tfx.orchestration import data_types  # noqa: E402
from tfx.types import standard_component_specs  # noqa: E402

from cifar_tfx.data.datasets import CIFAR10  # noqa: E402
from cifar_tfx.pipeline import component_ids as ids  # noqa: E402
from cifar_tfx.trainer.hparams import (DEMO, GATE_FIELDS, HParams, knobs, run_parameter_fields,  # noqa: E402
                                      run_parameter_kind, run_parameter_value,
                                      value_kind, with_overrides)
from cifar_tfx.trainer.model import build_network  # noqa: E402

BASE = DEMO  # every value is changed from this profile (a ResNet-8: cheap to build)
TRAINING_FIELDS = tuple(name for name in knobs() if name not in GATE_FIELDS)


def _candidates(name):
    field, declared = knobs()[name]
    kind = value_kind(field)
    current = getattr(BASE, name)
    reference = current if current is not None else field.default
    if kind is bool:
        return [not field.default]
    if declared.choices:
        return list(declared.choices)
    if kind is tuple:
        return [tuple(round(value * 0.8, 6) for value in reference)]
    if kind is int:
        start = reference if reference is not None else int(declared.low)
        return [start + step for step in range(1, 13)] + [start - step for step in range(1, 13)]
    numbers = [reference * 0.5, reference * 2] if reference else []
    return numbers + [declared.low + (declared.high - declared.low) * share for share in (0.37, 0.11, 0.003)]


def given_value(name):
    """A value ``name``'s declaration allows that differs from its default and from ``BASE``'s."""
    field, _ = knobs()[name]
    for value in _candidates(name):
        if value in (field.default, getattr(BASE, name)):
            continue
        try:
            with_overrides(BASE, **{name: value})
        except ValueError:
            continue
        return value
    raise AssertionError(f"no value of {name} differs from its default and is allowed: extend _candidates")


def given(name):
    return with_overrides(BASE, **{name: given_value(name)})


def test_each_given_value_differs_from_the_default_and_the_base():
    for name, (field, _) in knobs().items():
        value = given_value(name)
        assert value != field.default and value != getattr(BASE, name), name
        assert getattr(given(name), name) == value, name


# --- the command line ---

@pytest.mark.parametrize("name", [name for name, (_, declared) in knobs().items() if declared.flag])
def test_every_option_reaches_the_runs_hparams(name):
    from cifar_tfx.cli_hparams import add_hparam_options, hparams_from_args, option_name

    parser = argparse.ArgumentParser()
    add_hparam_options(parser)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--dataset", default=CIFAR10.name)
    value = given_value(name)
    text = ("on" if value else "off") if isinstance(value, bool) else str(value)
    hparams = hparams_from_args(parser.parse_args([option_name(name), text]))
    assert getattr(hparams, name) == value


# --- the pipeline: what each component is handed ---

def _components(hparams, **kwargs):
    from cifar_tfx.pipeline.pipeline import create_pipeline

    pipeline = create_pipeline(pipeline_name="p", pipeline_root="/tmp/root", data_path="/tmp/data", dataset=CIFAR10,
                               hparams=hparams, serving_dir="/tmp/serving", **kwargs)
    return {component.id: component for component in pipeline.components}


def _gate_places(components):
    """Every value the Evaluator and the Pusher are handed, by where: ``(component, key)``."""
    places = {(ids.EVALUATOR, key): value for key, value in components[ids.EVALUATOR].exec_properties.items()}
    config = json.loads(components[ids.PUSHER].exec_properties[standard_component_specs.CUSTOM_CONFIG_KEY])
    places.update({(ids.PUSHER, key): value for key, value in config.items()})
    return places


def _trainer_hparams(components):
    config = json.loads(components[ids.TRAINER].exec_properties[standard_component_specs.CUSTOM_CONFIG_KEY])
    return HParams.from_json(config["hparams"])


@pytest.fixture(scope="module")
def base_components():
    return _components(BASE)


@pytest.mark.parametrize("name", TRAINING_FIELDS)
def test_every_training_value_reaches_the_trainer(name, base_components):
    assert getattr(_trainer_hparams(_components(given(name))), name) == given_value(name)
    assert getattr(_trainer_hparams(base_components), name) == getattr(BASE, name)


@pytest.mark.parametrize("name", GATE_FIELDS)
def test_every_bound_reaches_the_component_that_applies_it_and_never_the_trainer(name, base_components):
    before, after = _gate_places(base_components), _gate_places(_components(given(name)))
    changed = {place for place in after if after[place] != before.get(place)}
    assert len(changed) == 1, f"{name} should change one value the Evaluator or Pusher is handed, changed {changed}"
    [place] = changed
    assert (before[place], after[place]) == (getattr(BASE, name), given_value(name))
    assert _trainer_hparams(_components(given(name))) == _trainer_hparams(base_components), "a bound never retrains"


# --- Kubeflow: run-time parameters ---

@pytest.fixture(scope="module")
def kfp_target():
    from cifar_tfx.kubeflow.compiler import KubeflowTarget

    return KubeflowTarget(image="registry.example/cifar:1", pipeline_root="gs://bucket/root",
                          data_path="gs://bucket/data", serving_dir="gs://bucket/serving", target="kfp")


@pytest.mark.parametrize("name", run_parameter_fields())
def test_every_run_parameter_is_read_by_its_component_and_a_runs_value_is_applied(name, kfp_target):
    from cifar_tfx.components.trainer import fold_run_values
    from cifar_tfx.kubeflow.compiler import build_pipeline

    compiled = given(name)
    components = {c.id: c for c in build_pipeline(kfp_target, CIFAR10, compiled).components}
    owner = components[ids.EVALUATOR if name in GATE_FIELDS else ids.TRAINER]
    parameter = owner.exec_properties[name]
    assert isinstance(parameter, data_types.RuntimeParameter) and parameter.name == name
    assert parameter.default == run_parameter_value(compiled, name), "the compiled value is the parameter's default"
    assert parameter.ptype is run_parameter_kind(name)
    if name in GATE_FIELDS:
        return  # the Evaluator's executor reads its bounds from these properties: test_wiring_serving.py
    run_value = run_parameter_value(compiled, name)  # a run sets it on a pipeline compiled with the profile's value
    properties = {standard_component_specs.CUSTOM_CONFIG_KEY: json.dumps({"hparams": BASE.training_key()}),
                  name: run_value}
    folded = fold_run_values(properties)
    hparams = HParams.from_json(json.loads(folded[standard_component_specs.CUSTOM_CONFIG_KEY])["hparams"])
    assert getattr(hparams, name) == given_value(name)


# --- training: from train_model to what uses each value ---

RICH_BASE = dataclasses.replace(with_overrides(BASE, time_budget_minutes=5.0), depth=None, small_crop_fraction=0.5)
PROBE_RATES = {8: 3000.0, 32: 900.0, 1: 2500.0, 2: 1200.0}  # images/s the stubbed probe reports: by depth, width
PROBE_SECONDS = 7.0  # what each stubbed probe takes on the injected clock
RUNS = itertools.count()  # each run its own checkpoint folder: nothing resumes


class _Recorded:
    """``Model.fit`` and ``evaluate`` as ``train_model`` calls them, run in no time."""

    def __init__(self):
        self.fits, self.evaluations = [], []

    def fit(self, model, dataset, **kwargs):
        self.fits.append({"model": model.to_json(), "optimizer": _plain(model.optimizer.get_config()),
                          "loss": _loss_value(model), "jit": bool(model._jit_compile),
                          "dataset": _dataset_constants(dataset),
                          "callbacks": [_callback_settings(callback) for callback in kwargs.pop("callbacks", [])],
                          **{key: value for key, value in kwargs.items() if key != "verbose"}})
        model.optimizer.iterations.assign_add(1)
        return keras.callbacks.History()

    def evaluate(self, model, dataset, num_classes, test_time_flip, test_time_shift=0):
        self.evaluations.append((num_classes, test_time_flip, test_time_shift))
        return 0.0, 0.0, None


def _plain(config):
    return json.loads(json.dumps(config, default=str))


def _loss_value(model):
    labels = tf.constant([[1], [3]], tf.int64)
    probabilities = tf.constant([[0.05, 0.6] + [0.35 / 8] * 8, [0.1] * 10], tf.float32)
    return round(float(tf.reduce_mean(model.loss(labels, probabilities))), 6)


def _dataset_constants(dataset):
    """The constants of the input pipeline's graph (buffer and batch sizes, augmentation's numbers), by op."""
    from tensorflow.core.framework import graph_pb2

    graph = graph_pb2.GraphDef.FromString(dataset._as_serialized_graph().numpy())
    nodes = list(graph.node) + [node for function in graph.library.function for node in function.node_def]
    constants = []
    for node in nodes:
        if node.op == "Const" and tf.dtypes.as_dtype(node.attr["value"].tensor.dtype).is_numpy_compatible:
            value = tf.make_ndarray(node.attr["value"].tensor)
            constants.append((node.name.rsplit("/", 1)[-1], np.asarray(value).tolist() if value.size < 64 else
                              value.shape))
    return sorted(constants, key=repr)


def _callback_settings(callback):
    settings = {key: value for key, value in vars(callback).items()
                if isinstance(value, (bool, int, float, str, tuple)) and not key.startswith("_")}
    clock = getattr(callback, "clock", None)
    if clock is not None and hasattr(clock, "planned_steps"):
        settings["clock"] = (clock.planned_steps, clock.budget_seconds, clock.elapsed_before)
    return type(callback).__name__, settings


def _small_network(hparams, input_shape, num_classes, **_):
    return keras.Sequential([keras.layers.Flatten(input_shape=input_shape),
                             keras.layers.Dense(num_classes, activation="softmax")])


def _training_use(hparams, tmp_path, monkeypatch, network=True):
    """What ``train_model`` hands to everything that uses ``hparams``, nothing trained. ``network=False``:
    every network is a small stand-in (what the rest is handed, at a tenth of the cost)."""
    from cifar_tfx.trainer import train

    keras.backend.clear_session()
    if not network:
        monkeypatch.setattr(train, "build_network", _small_network)
    tf.random.set_seed(7)
    recorded = _Recorded()
    images = tf.random.stateless_uniform([64, 32, 32, 3], seed=[1, 2])
    labels = tf.range(64, dtype=tf.int64) % 10
    examples = tf.data.Dataset.from_tensor_slices((images, labels))
    monkeypatch.setattr(train, "expand_patterns", list)
    monkeypatch.setattr(train, "count_records", lambda files: 640)
    monkeypatch.setattr(train, "cached_examples", lambda files, tft_output, limit=None: examples.take(limit or 64))
    monkeypatch.setattr(train, "make_dataset", lambda *args, **kwargs: "eval batches")
    monkeypatch.setattr(train, "evaluate", recorded.evaluate)
    monkeypatch.setattr(train, "detect_cpu_bf16", lambda: False)
    clock = [100.0]

    def probe(network, *args, **kwargs):
        clock[0] += PROBE_SECONDS
        return PROBE_RATES[network.depth or network.width]

    monkeypatch.setattr(train, "measure_throughput", probe)
    monkeypatch.setattr(keras.Model, "fit", lambda model, dataset, **kwargs: recorded.fit(model, dataset, **kwargs))
    try:
        _, result = train.train_model(train_files=["train"], eval_files=["test"], tft_output=None, hparams=hparams,
                                      dataset=CIFAR10, checkpoint_dir=str(tmp_path / f"ckpt-{next(RUNS)}"),
                                      clock=lambda: clock[0], stream=io.StringIO(), gpus=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
        monkeypatch.setattr(train, "build_network", build_network)
    return {"fits": recorded.fits, "evaluations": recorded.evaluations, "runtime": dataclasses.asdict(result.runtime),
            "network_choice": _plain(result.network_choice)}


@pytest.mark.parametrize("network", [False, True])
def test_the_record_of_training_is_the_same_for_the_same_values(network, base_use, tmp_path, monkeypatch):
    first = base_use(RICH_BASE, network)
    assert len(first["fits"]) == 1 and first["evaluations"] == [(10, False, 0)]
    assert first["network_choice"]["knob"] == "depth"
    assert first == _training_use(RICH_BASE, tmp_path, monkeypatch, network), "else any field would seem to change it"


@pytest.fixture(scope="module")
def base_use(tmp_path_factory):
    """``_training_use`` of each base, computed once when first asked for."""
    known = {}
    patch = pytest.MonkeyPatch()

    def use(base, network):
        if (base, network) not in known:
            known[base, network] = _training_use(base, tmp_path_factory.mktemp("base"), patch, network)
        return known[base, network]

    yield use
    patch.undo()


def _given_values(name):
    """``given_value``, and for a field with choices every other choice (on this machine ``auto`` may
    mean what one of them says)."""
    _, declared = knobs()[name]
    others = [choice for choice in declared.choices if choice != getattr(BASE, name)]
    return others or [given_value(name)]


@pytest.mark.parametrize("name", TRAINING_FIELDS)
def test_every_training_value_reaches_what_training_uses(name, base_use, tmp_path, monkeypatch):
    """First with a small stand-in network (cheap), then with the real one for the network's own fields."""
    for network in (False, True):
        for base in (BASE, RICH_BASE):
            for value in _given_values(name):
                try:
                    hparams = with_overrides(base, **{name: value})
                except ValueError:
                    continue
                if hparams == base:
                    continue
                if _training_use(hparams, tmp_path, monkeypatch, network) != base_use(base, network):
                    return
    pytest.fail(f"{name}={_given_values(name)} changed nothing train_model hands on (network, optimizer, loss, "
                f"schedule, clock, input pipeline, runtime, evaluation): the value is lost")


def test_the_schedule_and_the_optimizer_start_from_the_given_rate(tmp_path, monkeypatch):
    """A field used in two places can lose its value in one: the rate the optimizer is built with and
    the rate the schedule sets before every step are both the user's."""
    use = _training_use(with_overrides(BASE, learning_rate=0.37, warmup_fraction=0.2), tmp_path, monkeypatch,
                        network=False)
    [fit] = use["fits"]
    assert float(fit["optimizer"]["learning_rate"]) == pytest.approx(0.37)
    [schedule] = [settings for kind, settings in fit["callbacks"] if kind == "StepScheduleController"]
    assert (schedule["initial_rate"], schedule["warmup_fraction"]) == (0.37, 0.2)
    assert (schedule["drop_fractions"], schedule["drop_factors"]) == (BASE.lr_drop_fractions, BASE.lr_drop_factors)


def test_a_budget_runs_clock_starts_with_the_seconds_its_probes_took(base_use):
    use = base_use(RICH_BASE, False)
    probes = 3  # two networks, then the smallest on small crops
    assert use["network_choice"]["probe_seconds"] == probes * PROBE_SECONDS
    assert use["network_choice"]["seconds_left"] == RICH_BASE.time_budget_minutes * 60 - probes * PROBE_SECONDS
    [fit] = use["fits"]
    clocks = {settings["clock"] for _, settings in fit["callbacks"] if "clock" in settings}
    assert clocks == {(None, RICH_BASE.time_budget_minutes * 60, probes * PROBE_SECONDS)}
    assert "ThroughputCheck" in [kind for kind, _ in fit["callbacks"]], "the attempt that probed rechecks"


def test_run_fn_trains_with_the_configured_values_and_exports_the_views_trained_for(tmp_path, monkeypatch):
    """The hop between TFX's Trainer and ``train_model``: ``custom_config`` in, the export's test-time views out."""
    import types

    import tensorflow_transform as tft

    from cifar_tfx.trainer import export, report, run_fn, train

    hparams = with_overrides(BASE, learning_rate=0.37, cutout_size=5, test_time_flip=True, test_time_shift=2)
    trained, exported = [], []

    def fake_train_model(**kwargs):
        trained.append(kwargs)
        return "model", types.SimpleNamespace(hparams=None, history={}, learning_rates=[], steps_done=3,
                                              resumed_from_step=0, elapsed_seconds=1.0, images_per_second=9.0,
                                              runtime=types.SimpleNamespace(precision="float32", xla=False),
                                              network_choice=None)

    monkeypatch.setattr(tft, "TFTransformOutput", lambda path: ("transform output", path))
    monkeypatch.setattr(train, "train_model", fake_train_model)
    monkeypatch.setattr(report, "plot_training", lambda *args, **kwargs: None)
    monkeypatch.setattr(export, "export_saved_model", lambda *args, **kwargs: exported.append((args, kwargs)))
    fn_args = types.SimpleNamespace(
        custom_config={run_fn.HPARAMS_KEY: hparams.training_key(), run_fn.DATASET_KEY: CIFAR10.name},
        transform_output=str(tmp_path / "transform"), train_files=[str(tmp_path / "train-*")],
        model_run_dir=str(tmp_path / "run"), serving_model_dir=str(tmp_path / "serving"))
    run_fn.run_fn(fn_args)
    [call] = trained
    assert call["hparams"] == HParams.from_json(hparams.training_key())
    assert call["tft_output"] == ("transform output", str(tmp_path / "transform"))
    [(args, kwargs)] = exported
    assert (kwargs["test_time_flip"], kwargs["test_time_shift"]) == (True, 2)
    assert args[2] == CIFAR10.class_names and args[3] == str(tmp_path / "serving")
