"""Submit a compiled spec as a run and, if asked, wait for it: open-source KFP 2 or Vertex AI.

``cifar-tfx kubeflow submit`` is a thin wrapper: the KFP SDK's ``kfp.Client`` talks to
the KFP API server, ``google-cloud-aiplatform``'s ``PipelineJob`` to Vertex AI. This
module adds what those clients leave to the caller: one readable error for an unreachable,
refusing, hung or wrong server, a wait loop with progress lines whose clock and sleep are
injected (tests run it without waiting), and the run's outcome as each backend records it.
The spec and the parameter values a run is submitted with are checked in ``run_request``.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Any, Callable, List, Mapping, Optional, Sequence, TextIO, Tuple

from cifar_tfx.kubeflow.run_request import SubmitError, load_spec
from cifar_tfx.progress import format_duration

# Final run states as each backend names them, and which of them is a success.
KFP_FINAL_STATES = {"SUCCEEDED": True, "FAILED": False, "SKIPPED": False, "CANCELED": False, "CANCELLED": False}
VERTEX_FINAL_STATES = {"PIPELINE_STATE_SUCCEEDED": True, "PIPELINE_STATE_FAILED": False,
                       "PIPELINE_STATE_CANCELLED": False}


REQUEST_SECONDS = 60.0  # one call of the API: a server that accepts and then says nothing is left after this


@dataclasses.dataclass(frozen=True)
class SubmitOptions:
    """What a user can set when submitting a compiled spec."""

    spec_path: str
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    run_name: Optional[str] = None
    experiment: Optional[str] = None
    enable_caching: Optional[bool] = None   # None: as compiled; False: no task is taken from the cache
    service_account: Optional[str] = None
    pipeline_root: Optional[str] = None     # None: the spec's defaultPipelineRoot


@dataclasses.dataclass(frozen=True)
class SubmittedRun:
    run_id: str
    url: str


class LostRun(Exception):
    """The run was submitted but could not be followed to its end or its outcome read; it goes on."""


@dataclasses.dataclass(frozen=True)
class RunOutcome:
    """How a finished run ended, as far as the backend says: its state, the tasks that failed, and
    whether the Pusher pushed (``None``: not known, ``unknown_reason`` says why)."""

    state: str
    succeeded: bool
    failed_tasks: Tuple[str, ...] = ()
    pushed: Optional[bool] = None
    pushed_version: str = ""
    pushed_destination: str = ""
    unknown_reason: str = ""


PUSHER_TASK, PUSHED_OUTPUT = "Pusher", "pushed_model"  # component_ids.PUSHER and TFX's Pusher output key


def outcome_from_pushed_metadata(state: str, succeeded: bool, failed_tasks: Sequence[str],
                                 metadata: Optional[Mapping[str, Any]], unknown_reason: str = "") -> RunOutcome:
    """The outcome from the Pusher output's custom properties (``pushed`` 1/0, version, destination)."""
    if not succeeded or metadata is None or "pushed" not in metadata:
        return RunOutcome(state, succeeded, tuple(failed_tasks),
                          unknown_reason=unknown_reason or ("" if not succeeded else "the Pusher recorded no outcome"))
    return RunOutcome(state, succeeded, tuple(failed_tasks), pushed=float(metadata["pushed"]) == 1.0,
                      pushed_version=str(metadata.get("pushed_version", "")),
                      pushed_destination=str(metadata.get("pushed_destination", "")))


# --------------------------------------------------------------------------------------
# Open-source KFP 2 (the KFP SDK client)
# --------------------------------------------------------------------------------------


def kfp_client(host: str, namespace: Optional[str] = None, token: Optional[str] = None,
               probe_timeout: float = 10.0, request_timeout: float = REQUEST_SECONDS):
    """A ``kfp.Client`` for the API server at ``host`` (``http(s)://...``), each of whose calls waits at most
    ``request_timeout`` seconds for an answer.

    The server's health endpoint is asked first, once: the SDK client would retry an
    unreachable host for 20 s and then raise a bare ``TimeoutError``.
    """
    import warnings

    import kfp
    import requests

    if not host.startswith(("http://", "https://")):
        raise SubmitError(f"--host {host!r} must start with http:// or https://")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        requests.get(f"{host.rstrip('/')}/apis/v2beta1/healthz", timeout=probe_timeout, headers=headers)
    except requests.RequestException as err:
        raise SubmitError(f"cannot reach the KFP API at {host}: {type(err).__name__}") from err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP v2.0.0-beta.2 and later"
        client = kfp.Client(host=host, namespace=namespace or "kubeflow", existing_token=token)
    _bound_each_request(client, request_timeout)
    return client


def _bound_each_request(client, seconds: float) -> None:
    """Give every call of ``client`` a timeout. The SDK's generated REST client passes ``timeout=None`` to
    urllib3 unless a call names ``_request_timeout`` (kfp_server_api/rest.py), which ``kfp.Client``'s
    methods never do: a server that accepts a connection and then says nothing would hold it forever.
    The REST client reads a float only as a ``(connect, read)`` pair (a lone number must be an ``int``)."""
    rest = client._run_api.api_client.rest_client
    request = rest.request

    def bounded(*args, _request_timeout=None, **kwargs):
        return request(*args, _request_timeout=_request_timeout or (seconds, seconds), **kwargs)

    rest.request = bounded


def submit_kfp(client, options: SubmitOptions, namespace: Optional[str] = None) -> SubmittedRun:
    """Create the run (and its experiment if new) on a KFP 2 API server."""
    spec = load_spec(options.spec_path)
    run_name = options.run_name or f"{spec['pipelineInfo']['name']} {time.strftime('%Y-%m-%d %H-%M-%S')}"
    # The open-source backend never reads the spec's defaultPipelineRoot (backend/src/v2/driver/root_dag.go
    # takes the run's root, else the namespace's kfp-launcher ConfigMap, else minio://mlpipeline/v2/artifacts):
    # the root always travels with the run.
    pipeline_root = options.pipeline_root or spec.get("defaultPipelineRoot")
    if not pipeline_root:
        raise SubmitError(f"{options.spec_path} has no defaultPipelineRoot: give --pipeline-root")
    with _server_errors(client_host(client)):
        result = client.create_run_from_pipeline_package(
            options.spec_path, arguments=dict(options.parameters), run_name=run_name,
            experiment_name=options.experiment, namespace=namespace, pipeline_root=pipeline_root,
            enable_caching=options.enable_caching, service_account=options.service_account)
    run_id = getattr(result, "run_id", None)
    if not isinstance(run_id, str) or not run_id.strip():
        raise SubmitError(f"{client_host(client)} answered without a run id: is --host the KFP API's (or UI's) "
                          "address?")
    return SubmittedRun(run_id=run_id, url=f"{client_host(client).rstrip('/')}/#/runs/details/{run_id}")


def client_host(client) -> str:
    return getattr(client, "_uihost", None) or client._existing_config.host


def kfp_run_state(client, run_id: str) -> str:
    """The run's state as the API server reports it (``RUNNING``, ``SUCCEEDED``, ...)."""
    with _server_errors(client_host(client)):
        state = client.get_run(run_id).state
    if state is not None and (not isinstance(state, str) or len(state) > 64):
        raise SubmitError(f"{client_host(client)} answered a run state that is no KFP state")
    return str(state or "PENDING").upper()


DRIVER_SUFFIX = "-driver"  # the Argo task that runs a task's driver (argocompiler/dag.go): "Trainer-driver"


def failed_task_names(task_details: Sequence[Any], task_names: Sequence[str]) -> List[str]:
    """The spec's tasks that failed, from the run's task details (Argo nodes: a display name and a state);
    a failed driver counts as its task."""
    failed = set()
    for task in task_details:
        name = str(getattr(task, "display_name", "") or "")
        name = name[:-len(DRIVER_SUFFIX)] if name.endswith(DRIVER_SUFFIX) else name
        if str(getattr(task, "state", "") or "").upper() == "FAILED" and name in task_names:
            failed.add(name)
    return sorted(failed)


def kfp_run_outcome(client, run_id: str, task_names: Sequence[str], token: Optional[str] = None,
                    timeout: float = 30.0) -> RunOutcome:
    """The finished run's outcome: its state and failed tasks from the API server's run details; whether
    the Pusher pushed from ML Metadata (``run_metadata``), since the run details carry no outputs."""
    from cifar_tfx.kubeflow.run_metadata import GrpcWebMetadata, MetadataUnavailable, task_output_properties

    host = client_host(client)
    with _server_errors(host):
        run = client.get_run(run_id)
    state = str(run.state or "").upper()
    failed = failed_task_names(list(getattr(run.run_details, "task_details", None) or []), task_names)
    if not KFP_FINAL_STATES.get(state, False):
        return outcome_from_pushed_metadata(state, False, failed, None)
    try:
        properties = task_output_properties(GrpcWebMetadata(host, token=token, timeout=timeout), run_id,
                                            PUSHER_TASK, PUSHED_OUTPUT)
    except MetadataUnavailable as err:
        return outcome_from_pushed_metadata(state, True, failed, None, str(err))
    return outcome_from_pushed_metadata(state, True, failed, properties)


class _server_errors:
    """Turn connection failures, time-outs, API refusals and answers that are not the API's into one
    :class:`SubmitError` line."""

    def __init__(self, host: str) -> None:
        self.host = host

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, err, traceback) -> bool:
        if err is None or isinstance(err, SubmitError):
            return False
        import urllib3
        from kfp_server_api.exceptions import ApiException

        if isinstance(err, ApiException):
            detail = (err.body or err.reason or "").strip().replace("\n", " ")[:300]
            raise SubmitError(f"the KFP API at {self.host} refused the request: HTTP {err.status}: {detail}") from err
        if isinstance(err, urllib3.exceptions.ReadTimeoutError):
            raise SubmitError(f"the KFP API at {self.host} took the request but timed out answering it; if it "
                              f"was a new run, look for it at {self.host}/#/runs before submitting again") from err
        if isinstance(err, (urllib3.exceptions.HTTPError, OSError)):
            raise SubmitError(f"cannot reach the KFP API at {self.host}: {type(err).__name__}: "
                              f"{' '.join(str(getattr(err, 'reason', None) or err).split())[:200]}") from err
        if isinstance(err, (ValueError, TypeError, AttributeError, RecursionError)):  # the client's parsing
            raise SubmitError(f"{self.host} answered something that is not a KFP API answer "
                              f"({type(err).__name__}): is --host the KFP API's (or UI's) address?") from err
        return False


# --------------------------------------------------------------------------------------
# Vertex AI Pipelines (google-cloud-aiplatform)
# --------------------------------------------------------------------------------------


def submit_vertex(options: SubmitOptions, project: str, location: str, *, api_endpoint: Optional[str] = None,
                  credentials=None):
    """Create a Vertex AI ``PipelineJob`` and submit it; return ``(job, SubmittedRun)``."""
    from google.api_core import exceptions as google_errors
    from google.cloud import aiplatform

    spec = load_spec(options.spec_path)
    aiplatform.init(project=project, location=location, credentials=credentials,
                    api_endpoint=api_endpoint, api_transport="rest" if api_endpoint else None)
    job = aiplatform.PipelineJob(
        display_name=options.run_name or spec["pipelineInfo"]["name"], template_path=options.spec_path,
        pipeline_root=options.pipeline_root or spec.get("defaultPipelineRoot"),
        parameter_values=dict(options.parameters), enable_caching=options.enable_caching,
        project=project, location=location, credentials=credentials)
    try:
        job.submit(service_account=options.service_account, experiment=options.experiment)
    except google_errors.GoogleAPICallError as err:
        raise SubmitError(f"Vertex AI refused the pipeline job: {err}") from err
    except (google_errors.RetryError, OSError) as err:
        raise SubmitError(f"cannot reach Vertex AI ({api_endpoint or location}): {err}") from err
    return job, SubmittedRun(run_id=job.resource_name, url=job._dashboard_uri())


def vertex_run_state(job) -> str:
    """The job's state name (``PIPELINE_STATE_RUNNING``, ...), refreshed from the service."""
    job._sync_gca_resource()
    return job.state.name


def vertex_run_outcome(job, task_names: Sequence[str]) -> RunOutcome:
    """The finished job's outcome from its task details (Vertex returns artifacts with their metadata)."""
    from google.protobuf import json_format

    state = job.state.name
    tasks = list(job.gca_resource.job_detail.task_details)
    failed = sorted({t.task_name for t in tasks if t.state.name == "FAILED" and t.task_name in task_names})
    pusher = next((t for t in tasks if t.task_name == PUSHER_TASK), None)
    metadata = None
    if pusher is not None and PUSHED_OUTPUT in pusher.outputs and pusher.outputs[PUSHED_OUTPUT].artifacts:
        metadata = json_format.MessageToDict(pusher.outputs[PUSHED_OUTPUT].artifacts[0]._pb.metadata)
    return outcome_from_pushed_metadata(state, VERTEX_FINAL_STATES.get(state, False), failed, metadata,
                                        "" if pusher is not None else "the job's details name no Pusher task")


# --------------------------------------------------------------------------------------
# Waiting
# --------------------------------------------------------------------------------------


def wait_for_run(get_state: Callable[[], str], final_states: Mapping[str, bool], timeout_seconds: float, *,
                 poll_seconds: float = 15.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, stream: Optional[TextIO] = None) -> str:
    """Poll ``get_state`` until a final state; print each change with the elapsed time.

    Returns the final state; raises :class:`LostRun` when ``timeout_seconds`` pass first or the
    backend stops answering.
    """
    stream = stream or sys.stderr
    started = clock()
    last = None
    while True:
        try:
            state = get_state()
        except SubmitError as err:
            raise LostRun(f"lost the connection while waiting: {err}") from err
        elapsed = clock() - started
        if state != last:
            stream.write(f"run state: {state} after {format_duration(elapsed)}\n")
            stream.flush()
            last = state
        if state in final_states:
            return state
        if elapsed + poll_seconds > timeout_seconds:
            raise LostRun(f"the run is still {state} after {format_duration(elapsed)} (--timeout {timeout_seconds:g} s)")
        sleep(poll_seconds)
