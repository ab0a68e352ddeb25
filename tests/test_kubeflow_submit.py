"""`cifar-tfx kubeflow submit` against stand-in API servers on 127.0.0.1 (KFP 2 REST and Vertex AI REST)."""

import socket

import pytest
import yaml

pytest.importorskip("kfp")

from api_standin import KfpStandIn  # noqa: E402

from cifar_tfx.cli import EXIT_BAD_INPUT, EXIT_PIPELINE_FAILED, main  # noqa: E402
from cifar_tfx.cli_common import EXIT_NOT_PUSHED, EXIT_RUN_UNFOLLOWED  # noqa: E402
from cifar_tfx.kubeflow import submit  # noqa: E402


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """A kfp and a vertex spec compiled by the real compiler."""
    from cifar_tfx.data.datasets import CIFAR10
    from cifar_tfx.kubeflow.compiler import KubeflowTarget, compile_pipeline
    from cifar_tfx.trainer.hparams import DEMO

    folder = tmp_path_factory.mktemp("specs")
    paths = {}
    for target in ("kfp", "vertex"):
        paths[target] = str(folder / f"{target}.yaml")
        compile_pipeline(KubeflowTarget(image="i:1", pipeline_root="gs://b/root", data_path="gs://b/data.tar.gz",
                                        serving_dir="gs://b/models", target=target), CIFAR10, DEMO, paths[target])
    return paths


def _submit(spec, host, *extra):
    return main(["kubeflow", "submit", spec, "--host", host, "--poll-seconds", "0.01", *extra])


def test_spec_and_typed_parameters_arrive(compiled, capsys):
    with KfpStandIn(["SUCCEEDED"]) as server:
        code = _submit(compiled["kfp"], server.url, "--param", "epochs=3", "--param", "data_path=gs://b/new.tar.gz",
                       "--param", "min_accuracy=0.5", "--param", "architecture=airbench", "--param", "nesterov=on",
                       "--experiment", "nightly", "--run-name", "r1")
    assert code == 0
    run = server.bodies("POST", "/apis/v2beta1/runs")[0]
    with open(compiled["kfp"]) as handle:
        spec, platform = [d for d in yaml.safe_load_all(handle) if d]
    # kfp.Client sends a spec with a platform document as {pipeline_spec, platform_spec}: the Trainer's
    # GPU toleration must reach the API server.
    assert run["pipeline_spec"] == {"pipeline_spec": spec, "platform_spec": platform}
    assert "tolerations" in str(run["pipeline_spec"]["platform_spec"])
    assert run["runtime_config"]["parameters"] == {"epochs": 3.0, "data_path": "gs://b/new.tar.gz",
                                                   "min_accuracy": 0.5, "architecture": "airbench", "nesterov": "on"}
    assert run["display_name"] == "r1" and run["experiment_id"] == "exp-1"
    assert run["runtime_config"]["pipeline_root"] == "gs://b/root", "the spec's root travels with every run"
    assert server.bodies("POST", "/apis/v2beta1/experiments")[0]["display_name"] == "nightly"
    assert f"run run-42: {server.url}/#/runs/details/run-42" in capsys.readouterr().out


def test_a_given_pipeline_root_replaces_the_specs(compiled):
    with KfpStandIn() as server:
        assert _submit(compiled["kfp"], server.url, "--pipeline-root", "gs://other/root") == 0
    assert server.bodies("POST", "/apis/v2beta1/runs")[0]["runtime_config"]["pipeline_root"] == "gs://other/root"


def test_no_cache_turns_caching_off_for_every_task(compiled):
    with KfpStandIn() as server:
        assert _submit(compiled["kfp"], server.url, "--no-cache") == 0
    tasks = server.bodies("POST", "/apis/v2beta1/runs")[0]["pipeline_spec"]["pipeline_spec"]["root"]["dag"]["tasks"]
    assert all(task["cachingOptions"].get("enableCache", False) is False for task in tasks.values())


def test_wait_reports_states_and_a_failed_run_exits_3_naming_the_failed_task(compiled, capsys):
    with KfpStandIn(["PENDING", "RUNNING", "FAILED"], failed_task="Trainer") as server:
        code = _submit(compiled["kfp"], server.url, "--wait")
    assert code == EXIT_PIPELINE_FAILED
    captured = capsys.readouterr()
    assert "run state: RUNNING" in captured.err and "run state: FAILED" in captured.err
    assert "run run-42 finished: FAILED; failed task: Trainer" in captured.out


def test_wait_exits_0_only_when_the_model_was_pushed(compiled, capsys):
    with KfpStandIn(["RUNNING", "SUCCEEDED"], pushed=1) as server:
        assert _submit(compiled["kfp"], server.url, "--wait") == 0
    assert "finished: SUCCEEDED; pushed: version 3 to /mnt/models/cifar10/3" in capsys.readouterr().out
    # Read as KFP's UI reads it: gRPC-Web to ML Metadata, from the run's context to the Pusher's output.
    asked = [r["path"].rsplit("/", 1)[1] for r in server.requests if r["path"].startswith("/ml_metadata.")]
    assert asked == ["GetContextByTypeAndName", "GetExecutionsByContext", "GetEventsByExecutionIDs",
                     "GetArtifactsByID"]


def test_the_released_api_server_names_no_task_outputs(compiled):
    """What the run details carry on a released backend: a reading of the Pusher's outputs from them (how
    `submit --wait` once read them) finds none, so the outcome must come from ML Metadata."""
    with KfpStandIn(["SUCCEEDED"]) as server:
        client = submit.kfp_client(server.url)
        details = client.get_run("run-42").run_details.task_details
    assert {task.display_name for task in details} >= {"Pusher", "Pusher-driver", "Trainer"}
    assert not any(task.outputs or task.inputs for task in details)


def test_a_failed_driver_names_its_task(compiled):
    class Detail:
        def __init__(self, display_name, state):
            self.display_name, self.state = display_name, state

    details = [Detail("root", "FAILED"), Detail("Trainer-driver", "FAILED"), Detail("Pusher", "SKIPPED")]
    assert submit.failed_task_names(details, ["Trainer", "Pusher"]) == ["Trainer"]


def test_a_run_that_succeeded_without_pushing_exits_4(compiled, capsys):
    with KfpStandIn(["SUCCEEDED"], pushed=0) as server:
        assert _submit(compiled["kfp"], server.url, "--wait") == EXIT_NOT_PUSHED
    assert "finished: SUCCEEDED; not pushed: the Evaluator did not bless the model" in capsys.readouterr().out


def test_an_outcome_that_cannot_be_read_is_not_called_a_success(compiled, capsys):
    with KfpStandIn(["SUCCEEDED"], serve_metadata=False) as server:  # --host is the API server, not the UI
        assert _submit(compiled["kfp"], server.url, "--wait") == EXIT_RUN_UNFOLLOWED
    out = capsys.readouterr().out
    assert "whether the model was pushed is unknown" in out and "HTTP 404" in out


def test_a_connection_lost_while_waiting_is_its_own_line_and_exit_code(compiled, capsys):
    with KfpStandIn(["RUNNING"], answer_gets=1) as server:
        code = _submit(compiled["kfp"], server.url, "--wait")
    err = capsys.readouterr().err
    assert code == EXIT_RUN_UNFOLLOWED
    assert err.count("error:") == 1 and "lost the connection while waiting" in err
    assert f"the run goes on: follow it at {server.url}/#/runs/details/run-42" in err


def test_unreachable_host_is_one_error_line(compiled, capsys):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = _submit(compiled["kfp"], f"http://127.0.0.1:{port}")
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert err.strip().count("\n") == 0 and err.startswith("error: cannot reach the KFP API at")


def test_server_refusal_is_reported(compiled, capsys):
    with KfpStandIn(refuse_runs_with="KFP only supports schema version 2.1.0") as server:
        code = _submit(compiled["kfp"], server.url)
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert "refused the request: HTTP 400" in err and "schema version 2.1.0" in err


@pytest.mark.parametrize("param, message", [
    ("epoch=3", "no parameter 'epoch'; it has: architecture, batch_size, crop_padding, cutout_size, data_fingerprint"),
    ("flip=yes", "--param flip: flip must be on or off, got 'yes'"),
    ("architecture=vgg", "architecture must be one of resnet, resnet9, airbench"),
    ("epochs=many", "--param epochs"),
    ("epochs=nan", "not a finite number"),
    ("epochs", "must be NAME=VALUE"),
])
def test_bad_parameters_fail_before_anything_is_sent(compiled, capsys, param, message):
    with KfpStandIn() as server:
        code = _submit(compiled["kfp"], server.url, "--param", param)
    assert code == EXIT_BAD_INPUT and message in capsys.readouterr().err
    assert not server.bodies("POST", "/apis/v2beta1/runs")


@pytest.mark.parametrize("params, message", [
    # the demo spec trains a ResNet-8: a depth names a resnet, which airbench is not
    (("architecture=airbench", "depth=20"), "--param architecture=airbench, depth=20: depth is for the resnet "
                                            "architecture; airbench has none, got depth 20"),
    (("architecture=airbench", "zero_init_residual=on"), "zero_init_residual is for networks with residual blocks"),
])
def test_training_values_are_folded_as_the_trainer_will_before_anything_is_sent(compiled, capsys, params, message):
    with KfpStandIn() as server:
        code = _submit(compiled["kfp"], server.url, *[arg for param in params for arg in ("--param", param)])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and message in err and err.count("\n") == 1, err
    assert not server.bodies("POST", "/apis/v2beta1/runs")


def test_wait_times_out_with_injected_clock():
    now = [0.0]
    states = iter(["RUNNING"] * 100)
    with pytest.raises(submit.LostRun, match="still RUNNING"):
        submit.wait_for_run(lambda: next(states), submit.KFP_FINAL_STATES, timeout_seconds=60, poll_seconds=15,
                            clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s),
                            stream=open("/dev/null", "w"))
    assert now[0] == 60.0  # polled at 0, 15, 30, 45, 60; the next poll would be past the timeout


def test_vertex_job_carries_spec_parameters_and_root(compiled, monkeypatch):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.aiplatform.utils import gcs_utils

    # PipelineJob.submit first makes sure the root's GCS bucket exists: a call to
    # Cloud Storage, not to the service under test; record it instead.
    buckets = []
    monkeypatch.setattr(gcs_utils, "create_gcs_bucket_for_pipeline_artifacts_if_it_does_not_exist",
                        lambda **kwargs: buckets.append(kwargs["output_artifacts_gcs_dir"]))
    options = submit.SubmitOptions(compiled["vertex"], {"epochs": 2.0}, run_name="v1")
    with KfpStandIn(["PIPELINE_STATE_RUNNING", "PIPELINE_STATE_SUCCEEDED"]) as server:
        job, run = submit.submit_vertex(options, "proj", "us-central1", api_endpoint=server.url,
                                        credentials=AnonymousCredentials())
        state = submit.wait_for_run(lambda: submit.vertex_run_state(job), submit.VERTEX_FINAL_STATES, 10,
                                    poll_seconds=0.01, stream=open("/dev/null", "w"))
        outcome = submit.vertex_run_outcome(job, ["Trainer", "Pusher"])
    assert state == "PIPELINE_STATE_SUCCEEDED"
    assert outcome.pushed is True and outcome.pushed_version == "3" and outcome.failed_tasks == ()
    created = [r for r in server.requests if r["method"] == "POST"][0]
    assert created["path"] == "/v1/projects/proj/locations/us-central1/pipelineJobs"
    body = created["body"]
    with open(compiled["vertex"]) as handle:
        assert body["pipelineSpec"] == yaml.safe_load(handle)
    assert body["runtimeConfig"]["gcsOutputDirectory"] == "gs://b/root"
    assert body["runtimeConfig"]["parameterValues"]["epochs"] == 2.0
    assert body["displayName"] == "v1" and buckets == ["gs://b/root"]
    assert run.run_id.startswith("projects/proj/locations/us-central1/pipelineJobs/")


def test_the_token_comes_from_a_file_or_the_environment_and_reaches_the_server(compiled, tmp_path, monkeypatch):
    token_file = tmp_path / "token"
    token_file.write_text("secret-from-file\n")
    with KfpStandIn() as server:
        assert _submit(compiled["kfp"], server.url, "--token-file", str(token_file)) == 0
        monkeypatch.setenv("KFP_TOKEN", "secret-from-env")
        assert _submit(compiled["kfp"], server.url) == 0
    assert server.authorizations() == ["Bearer secret-from-file", "Bearer secret-from-env"]


def test_an_unreadable_token_file_is_one_error_line(compiled, tmp_path, capsys):
    assert _submit(compiled["kfp"], "http://127.0.0.1:9", "--token-file", str(tmp_path / "missing")) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.startswith("error: --token-file")
