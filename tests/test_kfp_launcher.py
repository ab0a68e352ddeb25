"""The test harness's own rules where they touch buildah (``kfp_launcher.ImageTasks``), with a stand-in buildah."""

from __future__ import annotations

import json
import stat

from kfp_launcher import REEXEC_ATTEMPTS, ImageTasks

# A stand-in for the buildah command line: `inspect` and `from` answer as buildah does; `run` counts its calls
# in the file $1 and fails the first $2 of them the way buildah fails before it starts a command (the seal of
# its re-executed copy refused), then runs the command. A command named `false` fails as a command does.
FAKE_BUILDAH = r"""#!/bin/sh
count_file=$1; seal_failures=$2; shift 2
case $1 in
  inspect) echo '{"OCIv1": {"config": {"User": "1000:1000", "Env": ["HOME=/home/app"]}}}' ;;
  from) echo working-container ;;
  run)
    count=$(( $(cat "$count_file" 2>/dev/null || echo 0) + 1 )); echo $count > "$count_file"
    if [ $count -le $seal_failures ]; then
      echo "Close_Fd sealing memfd copy: Device or resource busy" >&2; exit 1
    fi
    while [ "$1" != "--" ]; do shift; done; shift
    exec "$@" ;;
esac
"""


def _tasks(tmp_path, seal_failures: int) -> ImageTasks:
    script = tmp_path / "buildah"
    script.write_text(FAKE_BUILDAH)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return ImageTasks("localhost/image", claims={},
                      buildah=[str(script), str(tmp_path / "runs"), str(seal_failures)])


def _runs(tmp_path) -> int:
    return int((tmp_path / "runs").read_text())


def test_a_refused_seal_before_the_command_starts_runs_it_again(tmp_path):
    tasks = _tasks(tmp_path, seal_failures=2)
    assert tasks.user == "1000:1000" and tasks.home == "/home/app" and tasks.container == "working-container"
    answer = tasks.run_command(["echo", "ran"])
    assert (answer.returncode, answer.stdout.strip(), _runs(tmp_path)) == (0, "ran", 3)
    task = tasks.run("Trainer", ["echo", json.dumps({"task": 1})], pvc_mounts=[], binds=[], timeout=60)
    assert task.returncode == 0 and json.loads(task.stdout) == {"task": 1}


def test_the_command_s_own_failure_is_not_run_again(tmp_path):
    answer = _tasks(tmp_path, seal_failures=0).run_command(["false"])
    assert answer.returncode != 0 and _runs(tmp_path) == 1


def test_a_seal_refused_every_time_ends_with_buildah_s_message(tmp_path):
    answer = _tasks(tmp_path, seal_failures=REEXEC_ATTEMPTS).run_command(["echo", "ran"])
    assert answer.returncode == 1 and "sealing memfd copy" in answer.stderr and _runs(tmp_path) == REEXEC_ATTEMPTS


# A task that does what a TFX executor does with its ExecutorInput: writes each output artifact of a TFX
# type at its URI (a folder), reads its input, and writes the ExecutorOutput file.
# A task that does what a TFX executor behind the task entrypoint does: each output of a TFX type written at
# the launcher's local path for its URI, its input read there, the ExecutorOutput file written. $POD_MINIO is
# where this machine shows the pod's /minio.
TASK_SCRIPT = r"""
import json, os, sys
def local(uri):
    rest = uri[len("minio://"):] if uri.startswith("minio://") else uri[len("/minio/"):]
    return os.path.join(os.environ["POD_MINIO"], rest)
executor_input = json.loads(sys.argv[1])
produced = {}
upstream = [a["artifacts"][0]["uri"] for a in executor_input["inputs"]["artifacts"].values()]
for key, listed in executor_input["outputs"]["artifacts"].items():
    artifact = listed["artifacts"][0]
    if "tfx." not in json.dumps(artifact["type"]):
        continue
    os.makedirs(local(artifact["uri"]))
    text = open(os.path.join(local(upstream[0]), "data.txt")).read() + "+" if upstream else "start"
    open(os.path.join(local(artifact["uri"]), "data.txt"), "w").write(text)
    produced[key] = {"artifacts": [{"metadata": {"n": len(text)}}]}  # no URI: the launcher keeps its own
output_file = local(executor_input["outputs"]["outputFile"])
os.makedirs(os.path.dirname(output_file), exist_ok=True)
json.dump({"artifacts": produced}, open(output_file, "w"))
print("task ran")
"""


class BindingTasks:
    """Runs a task here, telling it where the folder bound at the pod's /minio is on this machine."""

    def run(self, task, command, pvc_mounts, binds, timeout):
        import os
        import subprocess
        import sys

        (host, inside), = binds
        assert inside == "/minio"
        command = [sys.executable if part == "python" else part for part in command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "POD_MINIO": host})


def _two_task_spec(tmp_path):
    import yaml

    model = {"instanceSchema": "title: tfx.Examples\ntype: object\n"}
    component = lambda label, inputs: {"executorLabel": label, "outputDefinitions": {  # noqa: E731
        "artifacts": {"examples": {"artifactType": model}}}, **inputs}
    spec = {"pipelineInfo": {"name": "p"}, "root": {"dag": {"tasks": {
        "First": {"componentRef": {"name": "comp-first"}},
        "Second": {"componentRef": {"name": "comp-second"}, "inputs": {"artifacts": {"examples": {
            "taskOutputArtifact": {"producerTask": "First", "outputArtifactKey": "examples"}}}}}}}},
        "components": {"comp-first": component("exec-first", {}),
                       "comp-second": component("exec-second", {"inputDefinitions": {
                           "artifacts": {"examples": {"artifactType": model}}}})},
        "deploymentSpec": {"executors": {label: {"container": {"image": "i", "command": ["python", "-c", TASK_SCRIPT],
                                                               "args": ["{{$}}"]}}
                                         for label in ("exec-first", "exec-second")}}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_a_minio_root_moves_artifacts_and_the_launchers_log_through_the_object_store(tmp_path):
    from kfp_launcher import run_pipeline_spec
    from kfp_releases import EXECUTOR_LOGS, NEWEST

    store = tmp_path / "minio"
    outputs = run_pipeline_spec(_two_task_spec(tmp_path), "minio://mlpipeline/v2/artifacts", {},
                                tasks_run_by=BindingTasks(), object_store=str(store), release=NEWEST)
    second = outputs["Second"]["examples"]["artifacts"][0]
    assert second["uri"].startswith("minio://mlpipeline/v2/artifacts/Second/")
    assert (store / second["uri"][len("minio://"):] / "data.txt").read_text() == "start+", "uploaded, then downloaded"
    assert second["metadata"] == {"n": 6}
    log = outputs["First"][EXECUTOR_LOGS]["artifacts"][0]["uri"]
    assert (store / log[len("minio://"):]).read_text().strip() == "task ran", "the launcher's log, uploaded"
