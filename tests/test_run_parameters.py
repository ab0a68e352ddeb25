"""Values a pipeline run sets (Kubeflow parameters) reach the hyperparameters and the gate; checkpoint keys."""

import json
import math

import pytest

pytest.importorskip("tfx")

import tensorflow_model_analysis as tfma  # noqa: E402
from tfx.types import standard_component_specs  # noqa: E402
from tfx.utils import proto_utils  # noqa: E402

from cifar_tfx.components.evaluator import apply_min_accuracy  # noqa: E402
from cifar_tfx.components.trainer import fold_training_length  # noqa: E402
from cifar_tfx.pipeline.evaluation import make_eval_config  # noqa: E402
from cifar_tfx.trainer.hparams import DEMO, FULL, HParams, with_overrides, with_training_length  # noqa: E402
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


def test_trainer_executor_folds_the_length_into_custom_config():
    config = {"hparams": DEMO.training_key(), "dataset": "cifar10"}
    properties = {standard_component_specs.CUSTOM_CONFIG_KEY: json.dumps(config), "epochs": 2.5,
                  "time_budget_minutes": 0.0, "run_fn": "x"}
    folded = fold_training_length(properties)
    assert "epochs" not in folded and "time_budget_minutes" not in folded and folded["run_fn"] == "x"
    hparams = HParams.from_json(json.loads(folded[standard_component_specs.CUSTOM_CONFIG_KEY])["hparams"])
    assert hparams == with_overrides(DEMO, epochs=2.5, min_accuracy=HParams().min_accuracy)
    assert properties["epochs"] == 2.5, "the caller's dict is not changed"


def _bounds(config):
    return [t.threshold.value_threshold.lower_bound.value for s in config.metrics_specs for m in s.metrics
            for t in m.per_slice_thresholds if t.threshold.HasField("value_threshold")]


def test_evaluator_executor_writes_the_run_bound_into_the_eval_config():
    base = make_eval_config(0.93, 0.005)
    properties = {standard_component_specs.EVAL_CONFIG_KEY: proto_utils.proto_to_json(base), "min_accuracy": 0.42}
    applied = apply_min_accuracy(properties)
    config = tfma.EvalConfig()
    proto_utils.json_to_proto(applied[standard_component_specs.EVAL_CONFIG_KEY], config)
    assert _bounds(base) == [pytest.approx(0.93)] and _bounds(config) == [pytest.approx(0.42)]
    change = [t.threshold.change_threshold.absolute.value for s in config.metrics_specs for m in s.metrics
              for t in m.per_slice_thresholds]
    assert change == [pytest.approx(-0.005)], "the regression bound is kept"
    with pytest.raises(ValueError, match="min_accuracy must be within"):
        apply_min_accuracy({**properties, "min_accuracy": 2.0})


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
