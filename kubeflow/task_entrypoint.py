"""The container entrypoint of every task of a compiled spec: TFX's executor, with artifacts at the KFP launcher's paths.

Open-source KFP 2 keeps artifacts in MinIO (``minio://``) or S3 (``s3://``), which
TensorFlow 2.16 cannot open. Its launcher does the transfers instead
(backend/src/v2/component/launcher_v2.go in kubeflow/pipelines): before the
container's command runs it downloads every input artifact to
``LocalPathForURI(uri)`` (``minio://b/k`` -> ``/minio/b/k``, ``s3://b/k`` -> ``/s3/b/k``)
and creates the parent folder of every output's local path; afterwards it uploads
each output from that local path, unless the ``ExecutorOutput`` gave the output a
different URI (``mergeRuntimeArtifacts`` takes the executor's URI, and a URI with
no local path is not uploaded at all). The argo compiler mounts an ``emptyDir``
at ``/minio`` and ``/s3`` (backend/src/v2/compiler/argocompiler/container.go), so a
non-root container can write there.

TFX's entrypoint (``tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor``)
opens ``artifact.uri`` directly. This module rewrites the ``ExecutorInput`` so that
each ``minio://`` or ``s3://`` artifact URI is its launcher path, runs TFX's
entrypoint on it, then puts the object-store URIs back into the ``ExecutorOutput``
file, so the launcher uploads from the local paths and records the bucket URIs.
``gs://`` URIs are left alone: TensorFlow reads and writes them itself.

The backend may add outputs of its own. Since KFP 2.5.0 the default install publishes each task's
logs: the driver adds an output ``executor-logs`` of type ``system.Artifact`` to every container
task's ``ExecutorInput`` (``provisionOutputs`` in backend/src/v2/driver/driver.go, 2.5.0 to 2.17.0),
which the launcher itself writes and uploads (``getLogWriter``, launcher_v2.go). TFX would try to
import a class for every output and fail on ``system.Artifact``, so only the outputs typed with a TFX
artifact type (``tfx.<Type>``, as TFX's compiler declares every output) reach TFX; the others are
left to the launcher, which keeps the ``ExecutorInput``'s URI for an output the ``ExecutorOutput``
does not name (``uploadOutputArtifacts``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

# URI prefix -> the launcher's local folder for it (LocalPathForURI in launcher_v2.go).
LAUNCHER_PATHS = {"minio://": "/minio/", "s3://": "/s3/"}
TFX_ENTRYPOINT = "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
INVOCATION_FLAG = "--json_serialized_invocation_args"


def launcher_path(uri: str) -> Optional[str]:
    """The local path where the KFP launcher puts ``uri``'s object, or ``None`` for a URI it leaves alone."""
    for prefix, folder in LAUNCHER_PATHS.items():
        if uri.startswith(prefix):
            return folder + uri[len(prefix):]
    return None


TFX_TYPE_PREFIX = "tfx."


def artifact_type_title(artifact_type: Mapping[str, Any]) -> str:
    """The type's name: its ``schemaTitle``, or the ``title:`` line of its ``instanceSchema`` (how TFX's
    compiler writes every artifact type)."""
    if artifact_type.get("schemaTitle"):
        return str(artifact_type["schemaTitle"])
    for line in str(artifact_type.get("instanceSchema", "")).splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "title":
            return value.strip()
    return ""


def set_aside_backend_outputs(executor_input: Dict[str, Any]) -> List[str]:
    """Remove from ``executor_input`` (in place) the outputs whose type is not a TFX type: the backend's
    own, such as KFP 2.5's ``executor-logs``. Return their names."""
    outputs = executor_input.get("outputs", {}).get("artifacts", {})
    backend_owned = sorted(name for name, artifact_list in outputs.items()
                           if not all(artifact_type_title(artifact.get("type", {})).startswith(TFX_TYPE_PREFIX)
                                      for artifact in artifact_list.get("artifacts", [])))
    for name in backend_owned:
        del outputs[name]
    return backend_owned


def localize(executor_input: Dict[str, Any]) -> Dict[str, str]:
    """Point every ``minio://``/``s3://`` artifact of ``executor_input`` (inputs and outputs) at its launcher
    path, in place; return ``{local path: original URI}`` for :func:`restore_output_uris`."""
    original_uri: Dict[str, str] = {}
    for side in ("inputs", "outputs"):
        for artifact_list in executor_input.get(side, {}).get("artifacts", {}).values():
            for artifact in artifact_list.get("artifacts", []):
                local = launcher_path(artifact.get("uri", ""))
                if local is not None:
                    original_uri[local] = artifact["uri"]
                    artifact["uri"] = local
    return original_uri


def restore_output_uris(executor_output: Dict[str, Any], original_uri: Mapping[str, str]) -> Dict[str, Any]:
    """``executor_output`` with each launcher path given back its object-store URI (in place)."""
    for artifact_list in executor_output.get("artifacts", {}).values():
        for artifact in artifact_list.get("artifacts", []):
            if artifact.get("uri") in original_uri:
                artifact["uri"] = original_uri[artifact["uri"]]
    return executor_output


def split_invocation(argv: Sequence[str]) -> Tuple[List[str], int]:
    """``argv`` as a list and the index of the ExecutorInput JSON in it (the value of ``INVOCATION_FLAG``)."""
    arguments = list(argv)
    for index, argument in enumerate(arguments):
        if argument == INVOCATION_FLAG and index + 1 < len(arguments):
            return arguments, index + 1
        if argument.startswith(INVOCATION_FLAG + "="):
            arguments[index:index + 1] = [INVOCATION_FLAG, argument.split("=", 1)[1]]
            return arguments, index + 1
    raise SystemExit(f"error: {INVOCATION_FLAG} is missing: this entrypoint runs a task of a compiled spec")


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Run TFX's entrypoint with the ExecutorInput localized; rewrite its output file's URIs afterwards."""
    from absl import app
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

    arguments, at = split_invocation(sys.argv[1:] if argv is None else argv)
    executor_input = json.loads(arguments[at])
    set_aside_backend_outputs(executor_input)
    original_uri = localize(executor_input)
    arguments[at] = json.dumps(executor_input)
    output_file = executor_input.get("outputs", {}).get("outputFile", "")

    def run_then_restore(parsed) -> None:
        kubeflow_v2_run_executor.main(parsed)
        if original_uri and output_file:
            with open(output_file) as handle:
                executor_output = json.load(handle)
            with open(output_file, "w") as handle:
                json.dump(restore_output_uris(executor_output, original_uri), handle)

    app.run(run_then_restore, argv=[TFX_ENTRYPOINT] + arguments, flags_parser=_parse_flags)


def _parse_flags(argv: List[str]) -> Tuple[argparse.Namespace, List[str]]:
    """The flags of TFX's entrypoint (its own parser is private); anything else is a Beam argument.
    absl's parser, as TFX's: ``app.run`` needs absl's flags parsed by it."""
    from absl.flags import argparse_flags

    parser = argparse_flags.ArgumentParser(prog="cifar_tfx.kubeflow.task_entrypoint")
    parser.add_argument("--executor_class_path", required=True)
    parser.add_argument(INVOCATION_FLAG, required=True)
    parser.add_argument("--json_serialized_inputs_spec_args")
    return parser.parse_known_args(argv[1:])


if __name__ == "__main__":
    main()
