"""Values a pipeline run sets (Kubeflow parameters) reach the hyperparameters and the gate; checkpoint keys."""

import json
import math

import pytest

pytest.importorskip("tfx")

from tfx.types import standard_component_specs  # noqa: E402

from cifar_tfx.components.trainer import fold_run_values  # noqa: E402
from cifar_tfx.trainer.hparams import (DEMO, FULL, HParams, profile_for_dataset, run_parameter_fields,  # noqa: E402
                                      run_parameter_kind, run_parameter_value, with_overrides, with_run_values,
                                      with_training_length)
from cifar_tfx.trainer.run_fn import checkpoint_dir_for  # noqa: E402


def test_training_length_budget_wins_then_epochs_then_profile():
    assert with_training_length(FULL) == FULL
    by_epochs = with_training_length(FULL, epochs=3)
    assert (by_epochs.epochs, by_epochs.train_steps, by_epochs.time_budget_minutes) == (3.0, None, None)
    by_budget = with_training_length(FULL, epochs=3, minutes=30)
    assert (by_budget.epochs, by_budget.time_budget_minutes) == (None, 30.0)
    budget_profile = with_overrides(FULL, time_budget_minutes=10.0)
    assert with_training_length(budget_profile, epochs=2).time_budget_minutes is None


@pytest.mark.parametrize("epochs, minutes", [(-1, 0), (0, -5), (math.nan, 0), (0, math.inf)])
def test_training_length_refuses_bad_numbers(epochs, minutes):
    with pytest.raises(ValueError, match="training length"):
        with_training_length(FULL, epochs=epochs, minutes=minutes)


def test_trainer_executor_folds_the_run_values_into_custom_config():
    config = {"hparams": DEMO.training_key(), "dataset": "cifar10"}
    properties = {standard_component_specs.CUSTOM_CONFIG_KEY: json.dumps(config), "epochs": 2.5,
                  "time_budget_minutes": 0.0, "depth": 20, "batch_size": 64, "learning_rate": 0.05,
                  "weight_decay": 5e-4, "cutout_size": 0, "run_fn": "x"}
    folded = fold_run_values(properties)
    assert set(folded) == {standard_component_specs.CUSTOM_CONFIG_KEY, "run_fn"}
    hparams = HParams.from_json(json.loads(folded[standard_component_specs.CUSTOM_CONFIG_KEY])["hparams"])
    assert hparams == with_overrides(DEMO, epochs=2.5, depth=20, batch_size=64, learning_rate=0.05,
                                     weight_decay=5e-4, cutout_size=0, min_accuracy=HParams().min_accuracy)
    assert properties["epochs"] == 2.5, "the caller's dict is not changed"


def test_run_values_of_zero_keep_what_was_compiled_and_a_budget_wins():
    budget = with_overrides(DEMO, depth=None, time_budget_minutes=30.0)
    assert with_run_values(budget, {"depth": 0, "epochs": 0.0, "time_budget_minutes": 0.0}) == budget
    assert with_run_values(budget, {"depth": 20}).depth == 20
    # CIFAR-10's budget spec trains ResNet-9 with its width open: 0 keeps it open, a depth names a ResNet
    from cifar_tfx.data.datasets import CIFAR10

    resnet9 = with_overrides(profile_for_dataset("budget", CIFAR10), time_budget_minutes=30.0)
    assert with_run_values(resnet9, {"depth": 0, "width": 0}) == resnet9
    as_resnet = with_run_values(resnet9, {"depth": 20})
    assert (as_resnet.architecture, as_resnet.depth, as_resnet.width) == ("resnet", 20, 1)
    by_time = with_run_values(DEMO, {"epochs": 3.0, "time_budget_minutes": 5.0})
    assert (by_time.epochs, by_time.time_budget_minutes) == (None, 5.0)
    with pytest.raises(ValueError, match="batch_size must be within"):
        with_run_values(DEMO, {"batch_size": 10**9})
    with pytest.raises(ValueError, match="not run parameters"):
        with_run_values(DEMO, {"shuffle_buffer": 500})


NETWORK_AND_RECIPE = {"architecture", "whitened_stem", "zero_init_residual", "momentum", "nesterov", "lr_schedule",
                      "warmup_fraction", "label_smoothing", "crop_padding", "flip", "small_crop_fraction",
                      "small_crop_size", "test_time_flip", "test_time_shift"}


def test_every_run_parameter_is_a_declared_field_with_a_default_of_its_kind():
    assert set(run_parameter_fields()) == {"depth", "width", "weight_decay", "batch_size", "learning_rate", "epochs",
                                           "time_budget_minutes", "cutout_size", "min_accuracy", "max_regression",
                                           "min_class_accuracy"} | NETWORK_AND_RECIPE
    for profile in (DEMO, FULL):
        for name in run_parameter_fields():
            value, compiled = run_parameter_value(profile, name), getattr(profile, name)
            if isinstance(compiled, bool):
                assert value == ("on" if compiled else "off") and run_parameter_kind(name) is str, name
            else:
                assert value == compiled or (compiled is None and value == 0), name


def _profiles():
    from cifar_tfx.data.datasets import CIFAR10, FASHION_MNIST

    return {"demo": DEMO, "full": FULL, "budget-cifar10": with_overrides(profile_for_dataset("budget", CIFAR10),
                                                                          time_budget_minutes=30.0),
            "budget-fashion": with_overrides(profile_for_dataset("budget", FASHION_MNIST), time_budget_minutes=10.0)}


@pytest.mark.parametrize("profile", ["demo", "full", "budget-cifar10", "budget-fashion"])
def test_a_run_that_keeps_every_default_trains_what_was_compiled(profile):
    from cifar_tfx.kubeflow.compiler import default_parameter_values

    compiled = _profiles()[profile]
    defaults = default_parameter_values(compiled, "gs://b/data")
    assert with_run_values(compiled, {name: defaults[name] for name in run_parameter_fields()}) == compiled


def test_a_run_chooses_the_network_and_recipe_of_a_compiled_spec():
    from cifar_tfx.kubeflow.compiler import default_parameter_values

    def run(compiled, **changed):
        values = {name: value for name, value in default_parameter_values(compiled, "gs://b/d").items()
                  if name in run_parameter_fields()}
        return with_run_values(compiled, {**values, **changed})

    budget = _profiles()["budget-cifar10"]  # ResNet-9, width left to the probe
    airbench = run(budget, architecture="airbench")
    assert (airbench.architecture, airbench.width, airbench.depth, airbench.time_budget_minutes) == \
        ("airbench", None, None, 30.0), "the width stays open: the probe sizes the new network"
    assert run(budget, architecture="airbench", whitened_stem="on").whitened_stem is True
    whitened = run(budget, whitened_stem="on")  # each width the probe tries cuts its own stem
    assert (whitened.whitened_stem, whitened.width) == (True, None)
    full_as_resnet9 = run(FULL, architecture="resnet9")  # the compiled depth 56 stays at its default: dropped
    assert (full_as_resnet9.architecture, full_as_resnet9.depth, full_as_resnet9.width) == ("resnet9", None, 1)
    with pytest.raises(ValueError, match="depth is for the resnet architecture"):
        run(FULL, architecture="resnet9", depth=20)
    recipe = run(FULL, nesterov="on", flip="off", lr_schedule="linear", label_smoothing=0.1, test_time_shift=2)
    assert (recipe.nesterov, recipe.flip, recipe.lr_schedule, recipe.label_smoothing, recipe.test_time_shift) == \
        (True, False, "linear", 0.1, 2)
    assert run(recipe, nesterov="off").nesterov is False
    with pytest.raises(ValueError, match="flip must be on or off, got True"):
        run(FULL, flip=True)  # a run parameter carries text: on / off


def test_checkpoint_folder_changes_with_every_input_and_sits_beside_the_trainer_outputs():
    run_dir = "/root/pipeline/Trainer/model_run/7"
    base = checkpoint_dir_for(run_dir, DEMO, ["/root/pipeline/CifarExampleGen/examples/1/Split-train/*"],
                              "/root/pipeline/Transform/transform_graph/5")
    assert base.startswith("/root/pipeline/Trainer/checkpoints/")
    assert checkpoint_dir_for("/root/pipeline/Trainer/model_run/8", DEMO,
                              ["/root/pipeline/CifarExampleGen/examples/1/Split-train/*"],
                              "/root/pipeline/Transform/transform_graph/5") == base, "a retry finds it again"
    others = {
        checkpoint_dir_for(run_dir, DEMO, ["/root/pipeline/CifarExampleGen/examples/9/Split-train/*"],
                           "/root/pipeline/Transform/transform_graph/5"),
        checkpoint_dir_for(run_dir, DEMO, ["/root/pipeline/CifarExampleGen/examples/1/Split-train/*"],
                           "/root/pipeline/Transform/transform_graph/6"),
        checkpoint_dir_for(run_dir, with_overrides(DEMO, epochs=13.0),
                           ["/root/pipeline/CifarExampleGen/examples/1/Split-train/*"],
                           "/root/pipeline/Transform/transform_graph/5"),
    }
    assert base not in others and len(others) == 3
    assert checkpoint_dir_for("gs://b/r/p/run-1/Trainer/model_run", DEMO, ["gs://x"], "gs://y").startswith(
        "gs://b/r/p/run-1/checkpoints/")


def test_beam_options_reach_exactly_the_beam_components():
    from tfx.dsl.components.base import base_beam_component

    from cifar_tfx.data.datasets import CIFAR10
    from cifar_tfx.pipeline.local_runner import LocalRun
    from cifar_tfx.pipeline.pipeline import create_pipeline

    run = LocalRun(pipeline_name="p", pipeline_root="/tmp/r", data_path="/tmp/d", dataset=CIFAR10, hparams=DEMO,
                   serving_dir="/tmp/s", workers=2, beam_args=("--runner=FlinkRunner", "--parallelism=4"))
    assert run.beam_pipeline_args == ["--direct_running_mode=multi_processing", "--direct_num_workers=2",
                                      "--runner=FlinkRunner", "--parallelism=4"]
    pipeline = create_pipeline(pipeline_name="p", pipeline_root="/tmp/r", data_path="/tmp/d", dataset=CIFAR10,
                               hparams=DEMO, serving_dir="/tmp/s", beam_pipeline_args=run.beam_pipeline_args)
    with_args = {c.id: list(c.executor_spec.beam_pipeline_args) for c in pipeline.components
                 if isinstance(c, base_beam_component.BaseBeamComponent)}
    assert set(with_args) == {"CifarExampleGen", "StatisticsGen", "Transform", "Evaluator"}
    assert all(args == run.beam_pipeline_args for args in with_args.values())
    assert LocalRun(**{**run.__dict__, "workers": 1, "beam_args": ()}).beam_pipeline_args == ["--direct_num_workers=1"]
    with pytest.raises(ValueError, match="workers must be >= 1"):
        _ = LocalRun(**{**run.__dict__, "workers": 0}).beam_pipeline_args


def test_trainer_executor_given_a_gpu_stops_before_training_on_a_machine_without_one():
    from cifar_tfx.components.trainer import REQUIRED_GPUS_KEY, CifarTrainerExecutor
    from cifar_tfx.trainer.runtime import MissingGpuError, visible_devices

    assert not [d for d in visible_devices() if ":GPU:" in d], "this test needs a machine without GPUs"
    properties = {standard_component_specs.CUSTOM_CONFIG_KEY: json.dumps({"hparams": DEMO.training_key()}),
                  "epochs": 0.0, "time_budget_minutes": 0.0, REQUIRED_GPUS_KEY: 1}
    with pytest.raises(MissingGpuError, match="asked for 1 GPU"):
        CifarTrainerExecutor().Do({}, {}, properties)  # no inputs: anything past the check would fail otherwise


def test_true_false_fields_travel_as_text_because_tfx_takes_no_boolean_run_parameter():
    """TFX 1.16.0 (the release setup.py pins; tfx/orchestration/data_types.py) takes int, float and str."""
    from tfx.orchestration import data_types

    with pytest.raises(RuntimeError, match="Only str and scalar runtime parameters"):
        data_types.RuntimeParameter(name="flip", ptype=bool, default=True)
    booleans = [name for name in run_parameter_fields() if isinstance(getattr(FULL, name), bool)]
    assert booleans and all(run_parameter_kind(name) is str for name in booleans)
    assert data_types.RuntimeParameter(name="flip", ptype=str, default=run_parameter_value(FULL, "flip")).default == "on"
