"""Test harness: execute a compiled KFP 2 spec task by task, the way the open-source KFP backend does.

Not a product feature. For every task of ``root.dag``, in dependency order, it does
what the KFP driver and launcher do for a container task (``backend/src/v2/driver``,
``backend/src/v2/component/launcher_v2.go``):

* resolves input parameters, accepting only what the open-source driver resolves:
  ``runtimeValue.constant`` and the root's input parameters (run values or defaults);
* passes input artifacts from the producing task's ``ExecutorOutput`` (URI and metadata);
* chooses output URIs under the pipeline root (``<root>/<task>/<n>/<output>``, as the driver does);
* for a ``minio://`` or ``s3://`` root, moves artifacts as the launcher does: inputs are
  downloaded from the object store (a folder here, ``<store>/<bucket>/<key>``) to
  ``LocalPathForURI`` (``/minio/<bucket>/<key>``) in a fresh per-task folder standing for
  the pod's ``emptyDir`` at ``/minio``; the output file goes under the task root's local
  path; after the command, each output's URI is merged from the ``ExecutorOutput``
  (``mergeRuntimeArtifacts``) and uploaded from its local path, and a URI with no
  local path fails the task (the real launcher would record it without uploading);
* gives each task what the chosen backend release gives it (``kfp_releases``): the
  ``executor-logs`` output the driver adds since 2.5.0, which the launcher fills with the
  task's log and uploads; the ``ExecutorOutput`` file under the task root (2.15.0 and later)
  or at the pod's ``/tmp/kfp_outputs/output_metadata.json`` (before);
* builds the ``ExecutorInput``, substitutes it for the ``{{$}}`` placeholder in the
  container's arguments and runs the container's command and arguments, either
  inside the built image (:class:`ImageTasks`: ``buildah run`` as the image's user,
  the pipeline root and each PVC of the task's Kubernetes platform config bound where
  the spec says) or as a subprocess of this interpreter (:class:`LocalTasks`, for
  the development install: ``python`` is this interpreter, PVC mount paths must exist).

Importer and Resolver tasks are refused: the open-source backend cannot run TFX's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from kfp_releases import EXECUTOR_LOGS, EXECUTOR_LOGS_TYPE, NEWEST, KfpRelease

IMAGE_ENV = {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}  # kubeflow/Dockerfile


class TaskFailed(RuntimeError):
    pass


class LocalTasks:
    """Run a task's command with this interpreter; a PVC mount path must exist on this machine."""

    def run(self, task: str, command: Sequence[str], pvc_mounts: Sequence[Mapping[str, str]],
            binds: Sequence[Tuple[str, str]], timeout: float) -> subprocess.CompletedProcess:
        for host, inside in binds:
            if host != inside:
                raise TaskFailed(f"{task}: needs {host} at {inside}, which only ImageTasks can bind")
        for mount in pvc_mounts:
            if not os.path.isdir(mount["mountPath"]):
                raise TaskFailed(f"{task}: volume {mount.get('constant')} should be mounted at {mount['mountPath']}")
        command = [sys.executable if part == "python" else part for part in command]
        return subprocess.run(list(command), env={**os.environ, **IMAGE_ENV}, capture_output=True, text=True,
                              timeout=timeout)


# What buildah prints when it could not seal the copy of itself it re-executes (see _run_in_container).
REEXEC_SEAL_FAILURE = "sealing memfd copy"
REEXEC_ATTEMPTS = 3


class ImageTasks:
    """Run a task's command inside a built image, as a pod of that image would.

    One working container of ``image`` (``buildah from``); each task is a fresh
    ``buildah run`` as the image's own user with the image's environment and working
    directory, fresh empty ``/tmp`` and home folders, the pipeline root bound at its own
    path, and each PVC the platform spec mounts into the task bound at its ``mountPath``
    (``claims`` maps a claim name to the folder on this machine that stands for it).
    """

    def __init__(self, image: str, claims: Mapping[str, str], buildah: Sequence[str] = ("buildah",)):
        self.buildah = list(buildah)
        self.claims = dict(claims)
        config = json.loads(self._buildah("inspect", "--type", "image", image).stdout)["OCIv1"]["config"]
        self.user = config.get("User", "")
        self.home = next((e.split("=", 1)[1] for e in config.get("Env", []) if e.startswith("HOME=")), "")
        self.container = self._buildah("from", "--quiet", "--pull-never", image).stdout.strip()

    def _buildah(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.buildah + list(args), check=True, capture_output=True, text=True, **kwargs)

    def run(self, task: str, command: Sequence[str], pvc_mounts: Sequence[Mapping[str, str]],
            binds: Sequence[Tuple[str, str]], timeout: float) -> subprocess.CompletedProcess:
        binds = [f"{host}:{inside}" for host, inside in binds]
        for mount in pvc_mounts:
            if mount["constant"] not in self.claims:
                raise TaskFailed(f"{task}: the spec mounts claim {mount['constant']!r}, which this run does not have")
            binds.append(f"{self.claims[mount['constant']]}:{mount['mountPath']}")
        fresh = ["--mount", "type=tmpfs,destination=/tmp"]
        if self.home:
            fresh += ["--mount", f"type=tmpfs,destination={self.home}"]
        options = [f"--volume={bind}" for bind in binds] + fresh + (["--user", self.user] if self.user else [])
        return self._run_in_container(options, command, timeout)

    def run_command(self, command: Sequence[str], binds: Sequence[str] = (), timeout: float = 600) \
            -> subprocess.CompletedProcess:
        """Any command in the working container, as the image's user (for checks after a run)."""
        options = [f"--volume={bind}" for bind in binds] + (["--user", self.user] if self.user else [])
        return self._run_in_container(options, command, timeout)

    def _run_in_container(self, options: Sequence[str], command: Sequence[str], timeout: float) \
            -> subprocess.CompletedProcess:
        """``buildah run``, again when buildah failed to re-execute itself before starting ``command``.

        Before it starts anything, buildah copies its own binary into a memfd and seals it
        (containers/storage, ``pkg/unshare/unshare.c``, ``copy_self_proc_exe``); the kernel may
        refuse the seal with EBUSY while pages of the copy are briefly pinned. CI saw it once in a
        long run. Nothing of ``command`` has run then, so running it again changes nothing else.
        """
        for _ in range(REEXEC_ATTEMPTS):
            result = subprocess.run(self.buildah + ["run"] + list(options) + [self.container, "--"] + list(command),
                                    capture_output=True, text=True, timeout=timeout)
            if not (result.returncode != 0 and REEXEC_SEAL_FAILURE in result.stderr):
                break
        return result

    def close(self) -> None:
        subprocess.run(self.buildah + ["rm", self.container], capture_output=True)


def load_documents(spec_path: str):
    """``(PipelineSpec dict, PlatformSpec dict or {})`` from a compiled YAML."""
    with open(spec_path) as handle:
        documents = [d for d in yaml.safe_load_all(handle) if d]
    spec = next(d for d in documents if "pipelineInfo" in d)
    platform = next((d for d in documents if "platforms" in d), {})
    return spec, platform


def execution_order(spec: Mapping[str, Any]) -> List[str]:
    """Task names of ``root.dag`` so that every task comes after the tasks it depends on."""
    tasks = spec["root"]["dag"]["tasks"]

    def upstream(name: str) -> set:
        task = tasks[name]
        found = set(task.get("dependentTasks", []))
        for artifact in task.get("inputs", {}).get("artifacts", {}).values():
            found.add(artifact["taskOutputArtifact"]["producerTask"])
        return found

    order: List[str] = []
    remaining = set(tasks)
    while remaining:
        ready = sorted(name for name in remaining if upstream(name) <= set(order))
        if not ready:
            raise ValueError(f"cycle among tasks {sorted(remaining)}")
        order += ready
        remaining -= set(ready)
    return order


def _parameter_value(name: str, spec: Mapping[str, Any], root_values: Mapping[str, Any], task: str) -> Any:
    if "runtimeValue" in spec:
        if "constant" not in spec["runtimeValue"]:
            raise TaskFailed(f"{task}: parameter {name} is {spec['runtimeValue']}; the open-source driver "
                             "resolves only runtimeValue.constant")
        return spec["runtimeValue"]["constant"]
    if "componentInputParameter" in spec:
        return root_values[spec["componentInputParameter"]]
    raise TaskFailed(f"{task}: parameter {name} has an input kind this harness does not know: {spec}")


class FolderRoot:
    """A pipeline root that is a folder here, bound at the same path into every task."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def local(self, uri: str) -> str:
        return uri

    def task_root(self, task: str, salt: int) -> str:
        return os.path.join(self.folder, task, str(salt))

    def before(self, task_root: str, executor_input: Dict[str, Any]) -> List[Tuple[str, str]]:
        os.makedirs(os.path.dirname(executor_input["outputs"]["outputFile"]), exist_ok=True)
        return [(self.folder, self.folder)]

    def output_file(self, executor_input: Dict[str, Any]) -> str:
        return executor_input["outputs"]["outputFile"]

    def after(self, task: str, artifact: Dict[str, Any]) -> None:
        return None


# LocalPathForURI (backend/src/v2/component/launcher_v2.go) for the schemes TensorFlow cannot open.
LAUNCHER_FOLDERS = {"minio://": "/minio", "s3://": "/s3"}


class LauncherRoot:
    """A ``minio://`` or ``s3://`` root, with ``store`` (a folder here: ``<store>/<bucket>/<key>``)
    standing for the object store and the launcher's transfers done around each task."""

    def __init__(self, uri: str, store: str) -> None:
        self.prefix = next((p for p in LAUNCHER_FOLDERS if uri.startswith(p)), None)
        if self.prefix is None:
            raise ValueError(f"{uri!r} is not a minio:// or s3:// root")
        self.uri, self.store, self.mount = uri.rstrip("/"), store, LAUNCHER_FOLDERS[self.prefix]
        self.scratch = ""

    def task_root(self, task: str, salt: int) -> str:
        return f"{self.uri}/{task}/{salt}"

    def local(self, uri: str) -> str:
        """LocalPathForURI: where the task sees ``uri``; a URI it cannot map fails the task."""
        if not uri.startswith(self.prefix):
            raise TaskFailed(f"{uri!r} has no launcher path under {self.mount}: the launcher would record it "
                             "without uploading anything, and the next task would find nothing")
        return f"{self.mount}/{uri[len(self.prefix):]}"

    def _here(self, local_path: str) -> str:
        return os.path.join(self.scratch, os.path.relpath(local_path, self.mount))

    def _stored(self, uri: str) -> str:
        return os.path.join(self.store, uri[len(self.prefix):])

    def before(self, task_root: str, executor_input: Dict[str, Any]) -> List[Tuple[str, str]]:
        """A fresh emptyDir for the pod, the inputs downloaded into it and the outputs' parents made
        (downloadArtifacts, prepareOutputFolders); the output file under the task root's local path."""
        self.scratch = tempfile.mkdtemp(prefix="emptydir-", dir=self.store + "-pods")
        os.chmod(self.scratch, 0o777)  # as an emptyDir: any user may write
        for artifact_list in executor_input["inputs"]["artifacts"].values():
            for artifact in artifact_list["artifacts"]:
                shutil.copytree(self._stored(artifact["uri"]), self._here(self.local(artifact["uri"])))
        for artifact_list in executor_input["outputs"]["artifacts"].values():
            for artifact in artifact_list["artifacts"]:
                os.makedirs(os.path.dirname(self._here(self.local(artifact["uri"]))), exist_ok=True)
        executor_input["outputs"]["outputFile"] = f"{self.local(task_root)}/output_metadata.json"
        for root, folders, _ in os.walk(self.scratch):
            for folder in folders:
                os.chmod(os.path.join(root, folder), 0o777)
        return [(self.scratch, self.mount)]

    def output_file(self, executor_input: Dict[str, Any]) -> str:
        return self._here(executor_input["outputs"]["outputFile"])

    def after(self, task: str, artifact: Dict[str, Any]) -> None:
        """Upload the output from its local path (a missing folder is allowed, as the launcher allows it)."""
        produced, stored = self._here(self.local(artifact["uri"])), self._stored(artifact["uri"])
        if os.path.isdir(produced):
            shutil.copytree(produced, stored)
        elif os.path.exists(produced):  # a file output: the launcher's executor-logs
            os.makedirs(os.path.dirname(stored), exist_ok=True)
            shutil.copy2(produced, stored)


def run_pipeline_spec(spec_path: str, pipeline_root: str, parameter_values: Optional[Mapping[str, Any]] = None,
                      timeout_per_task: float = 1800.0, log_dir: Optional[str] = None,
                      tasks_run_by=None, object_store: Optional[str] = None,
                      cached: Optional[Mapping[str, Dict]] = None, release: KfpRelease = NEWEST,
                      only_tasks: Optional[Sequence[str]] = None) -> Dict[str, Dict]:
    """Execute every task; return each task's output artifacts (URI and metadata, as JSON dicts).

    ``pipeline_root``: a folder here, or a ``minio://``/``s3://`` URI whose objects live in the
    folder ``object_store``. ``tasks_run_by``: :class:`LocalTasks` (the default) or :class:`ImageTasks`.
    ``cached``: outputs of an earlier run for tasks KFP's cache would answer (they are not executed,
    and later tasks get those artifacts, as after a cache hit). ``release``: the backend release line
    whose driver and launcher the run follows. ``only_tasks``: run these (and nothing after them).
    """
    tasks_run_by = tasks_run_by or LocalTasks()
    if object_store is None:
        root = FolderRoot(pipeline_root)
    else:
        if not release.scratch_emptydirs:
            raise TaskFailed(f"KFP {release.name} mounts no emptyDir at /minio: the launcher writes into the "
                             "image's own folder (test_image_build checks the image user can)")
        root = LauncherRoot(pipeline_root, object_store)
        os.makedirs(object_store + "-pods", exist_ok=True)
    spec, platform = load_documents(spec_path)
    root_values = _root_values(spec, parameter_values)
    k8s = platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
    tasks = spec["root"]["dag"]["tasks"]
    for name, task in tasks.items():  # before anything runs, as the backend compiles the whole run first
        executor = spec["deploymentSpec"]["executors"][spec["components"][task["componentRef"]["name"]]["executorLabel"]]
        if "container" not in executor:
            raise TaskFailed(f"{name}: executor {sorted(executor)} is not a container; open-source KFP "
                             "cannot run TFX importer or resolver nodes")
    outputs: Dict[str, Dict] = {}
    salts = iter(range(1, 10**6))
    for name in execution_order(spec):
        if only_tasks is not None and name not in only_tasks:
            continue
        if cached and name in cached:
            outputs[name] = cached[name]
            continue
        task = tasks[name]
        component = spec["components"][task["componentRef"]["name"]]
        executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
        task_root = root.task_root(name, next(salts))
        executor_input: Dict[str, Any] = {
            "inputs": {"parameterValues": {}, "artifacts": {}},
            "outputs": {"artifacts": {}, "outputFile": os.path.join(task_root, "executor_output.json")},
        }
        for key, parameter in task.get("inputs", {}).get("parameters", {}).items():
            executor_input["inputs"]["parameterValues"][key] = _parameter_value(key, parameter, root_values, name)
        for key, artifact in task.get("inputs", {}).get("artifacts", {}).items():
            producer = artifact["taskOutputArtifact"]
            executor_input["inputs"]["artifacts"][key] = outputs[producer["producerTask"]][
                producer["outputArtifactKey"]]
        for key, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items():
            executor_input["outputs"]["artifacts"][key] = {"artifacts": [{
                "name": key, "type": definition["artifactType"], "uri": f"{task_root}/{key}", "metadata": {}}]}
        if release.executor_logs:  # provisionOutputs (driver.go) with PUBLISH_LOGS=true, the default install's
            executor_input["outputs"]["artifacts"][EXECUTOR_LOGS] = {"artifacts": [{
                "name": EXECUTOR_LOGS, "type": EXECUTOR_LOGS_TYPE, "uri": f"{task_root}/{EXECUTOR_LOGS}"}]}
        pod_tmp = tempfile.mkdtemp(prefix="pod-tmp-")
        if not release.output_file_in_task_root:
            if object_store is not None:
                raise TaskFailed(f"KFP {release.name} writes the ExecutorOutput under the pod's /tmp, which "
                                 "this harness does not keep for image tasks: run them as the newest release")
            executor_input["outputs"]["outputFile"] = os.path.join(pod_tmp, "kfp_outputs", "output_metadata.json")
        binds = root.before(task_root, executor_input)
        container = executor["container"]
        arguments = [json.dumps(executor_input) if part == "{{$}}" else part for part in container["args"]]
        result = tasks_run_by.run(name, container["command"] + arguments,
                                  k8s.get(component["executorLabel"], {}).get("pvcMount", []), binds,
                                  timeout_per_task)
        if log_dir:
            with open(os.path.join(log_dir, f"{name}.log"), "w") as log:
                log.write(result.stdout + result.stderr)
        if release.executor_logs:  # getLogWriter (launcher_v2.go): the launcher writes the log itself
            log_uri = executor_input["outputs"]["artifacts"][EXECUTOR_LOGS]["artifacts"][0]["uri"]
            log_path = root.output_file({"outputs": {"outputFile": root.local(log_uri)}})
            os.makedirs(os.path.dirname(log_path), exist_ok=True)
            with open(log_path, "w") as log:
                log.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise TaskFailed(f"{name} exited {result.returncode}:\n{result.stderr[-3000:]}")
        output_file = executor_input["outputs"]["outputFile"]
        with open(output_file if output_file.startswith(pod_tmp) else root.output_file(executor_input)) as handle:
            produced = json.load(handle).get("artifacts", {})
        shutil.rmtree(pod_tmp, ignore_errors=True)
        outputs[name] = {}
        for key, declared in executor_input["outputs"]["artifacts"].items():
            artifact = dict(declared["artifacts"][0])
            if key in produced:  # mergeRuntimeArtifacts: the executor's URI and metadata win
                artifact["uri"] = produced[key]["artifacts"][0].get("uri") or artifact["uri"]
                artifact["metadata"] = produced[key]["artifacts"][0].get("metadata", {})
            root.after(name, artifact)
            outputs[name][key] = {"artifacts": [artifact]}
    return outputs


def _root_values(spec: Mapping[str, Any], parameter_values: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The run's parameter values: the spec's defaults, then the run's own; every parameter needs one."""
    root_definitions = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    values = {name: d["defaultValue"] for name, d in root_definitions.items() if "defaultValue" in d}
    values.update(parameter_values or {})
    missing = sorted(set(root_definitions) - set(values))
    if missing:
        raise TaskFailed(f"no value for pipeline parameter(s) {missing}")
    return values
