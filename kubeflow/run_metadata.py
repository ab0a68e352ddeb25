"""What a finished open-source KFP 2 run produced, read from ML Metadata as its driver and launcher record it.

The API server's run details name each task and its state but carry no inputs or outputs: it builds
them from Argo's nodes (``toModelTask``, the ``NodeStatus`` case, in
backend/src/apiserver/server/api_converter.go, 2.0.0 to 2.17.0). What a task produced is in ML
Metadata (backend/src/v2/metadata/client.go and converter.go, the same releases):

* the run is a context of type ``system.PipelineRun`` named by the run id (``GetPipeline``);
* each task is an execution in that context whose custom property ``task_name`` is the task's
  name in the spec (``CreateExecution``);
* each output is an artifact linked by an ``OUTPUT`` event whose path's first step key is the output
  name (``PublishExecution``); a task has outputs the spec does not declare (``executor-logs`` since
  2.5.0), so an output is picked by its key, never by its order;
* the artifact's custom properties are the metadata the executor wrote, numbers as doubles, booleans
  as 0/1 integers (``toMLMDArtifact``).

A user reaches ML Metadata where KFP's UI does: gRPC-Web at ``/ml_metadata.MetadataStoreService/`` on
the UI's address (frontend/server/app.ts proxies it to the metadata Envoy), which is the ``--host`` a
port-forward to ``ml-pipeline-ui`` gives. Every answer is bounded in size and time.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

PIPELINE_RUN_CONTEXT = "system.PipelineRun"
TASK_NAME_PROPERTY = "task_name"
MAX_ANSWER_BYTES = 8 << 20  # an answer of a few executions or artifacts is kilobytes
PAGE_SIZE = 100


class MetadataUnavailable(Exception):
    """ML Metadata could not be asked, or does not hold what the run should have recorded."""


class GrpcWebMetadata:
    """Calls of ML Metadata's ``MetadataStoreService`` through gRPC-Web (as KFP's UI makes them).

    ``post`` is ``requests.post`` unless a test gives another.
    """

    def __init__(self, host: str, token: Optional[str] = None, timeout: float = 30.0,
                 post: Optional[Callable[..., Any]] = None) -> None:
        self.url = f"{host.rstrip('/')}/ml_metadata.MetadataStoreService/"
        self.headers = {"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1",
                        "Accept": "application/grpc-web+proto"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout
        self._post = post

    def call(self, method: str, request):
        """The response message of ``method`` (e.g. ``GetArtifactsByID``) for ``request``."""
        import requests
        from google.protobuf.message import DecodeError
        from ml_metadata.proto import metadata_store_service_pb2 as service

        payload = request.SerializeToString()
        post = self._post or requests.post
        try:
            answer = post(self.url + method, data=b"\x00" + len(payload).to_bytes(4, "big") + payload,
                          headers=self.headers, timeout=self.timeout)
        except requests.RequestException as err:
            raise MetadataUnavailable(f"cannot read ML Metadata at {self.url}: {type(err).__name__}") from err
        if answer.status_code != 200:
            raise MetadataUnavailable(f"ML Metadata at {self.url} answered HTTP {answer.status_code} "
                                      "(is --host the KFP UI's address?)")
        if len(answer.content) > MAX_ANSWER_BYTES:
            raise MetadataUnavailable(f"ML Metadata's answer to {method} is over {MAX_ANSWER_BYTES:,} bytes")
        message, status = grpc_web_frames(answer.content, answer.headers)
        if status.get("grpc-status", "0") != "0" or message is None:
            reason = " ".join(str(status.get("grpc-message") or status.get("grpc-status") or "").split())
            raise MetadataUnavailable(f"ML Metadata refused {method}: {reason[:200] or 'no answer'}")
        response_type = getattr(service, f"{method}Response")
        try:
            return response_type.FromString(message)
        except DecodeError as err:
            raise MetadataUnavailable(f"ML Metadata's answer to {method} is not a {method}Response") from err


def grpc_web_frames(body: bytes, headers) -> Tuple[Optional[bytes], Dict[str, str]]:
    """The first message and the status of a gRPC-Web answer (frames: a flag byte, a 4-byte length; flag
    0x80 marks the trailers). A trailers-only answer carries its status in the HTTP headers."""
    status = {k.lower(): v for k, v in headers.items() if k.lower() in ("grpc-status", "grpc-message")}
    message, at = None, 0
    while at + 5 <= len(body):
        flag, length = body[at], int.from_bytes(body[at + 1:at + 5], "big")
        frame = body[at + 5:at + 5 + length]
        at += 5 + length
        if flag & 0x80:
            for line in frame.decode("utf-8", "replace").split("\r\n"):
                key, _, value = line.partition(":")
                if key.strip().lower() in ("grpc-status", "grpc-message"):
                    status[key.strip().lower()] = value.strip()
        elif message is None:
            message = frame
    return message, status


def task_output_properties(metadata: GrpcWebMetadata, run_id: str, task_name: str,
                           output_key: str) -> Dict[str, Any]:
    """The custom properties of output ``output_key`` of task ``task_name`` in run ``run_id``.

    Raises :class:`MetadataUnavailable` when the run, the task's finished execution or the output
    is not recorded.
    """
    from ml_metadata.proto import metadata_store_pb2 as store
    from ml_metadata.proto import metadata_store_service_pb2 as service

    context = metadata.call("GetContextByTypeAndName", service.GetContextByTypeAndNameRequest(
        type_name=PIPELINE_RUN_CONTEXT, context_name=run_id)).context
    if not context.id:
        raise MetadataUnavailable(f"ML Metadata holds no run {run_id} (no {PIPELINE_RUN_CONTEXT} context)")
    finished = (store.Execution.COMPLETE, store.Execution.CACHED)
    executions = [execution for execution in _executions_of(metadata, context.id)
                  if execution.custom_properties[TASK_NAME_PROPERTY].string_value == task_name
                  and execution.last_known_state in finished]
    if not executions:
        raise MetadataUnavailable(f"ML Metadata records no finished {task_name} task in run {run_id}")
    execution = max(executions, key=lambda found: found.id)  # a retried task: its last attempt
    events = metadata.call("GetEventsByExecutionIDs", service.GetEventsByExecutionIDsRequest(
        execution_ids=[execution.id])).events
    artifact_ids = [event.artifact_id for event in events if event.type == store.Event.OUTPUT
                    and event.path.steps and event.path.steps[0].key == output_key]
    if not artifact_ids:
        raise MetadataUnavailable(f"the {task_name} task of run {run_id} recorded no output {output_key!r}")
    artifacts = metadata.call("GetArtifactsByID", service.GetArtifactsByIDRequest(
        artifact_ids=artifact_ids[:1])).artifacts
    if not artifacts:
        raise MetadataUnavailable(f"ML Metadata has no artifact {artifact_ids[0]}")
    properties: Dict[str, Any] = {}
    for name, value in artifacts[0].custom_properties.items():
        kind = value.WhichOneof("value")
        if kind in ("int_value", "double_value", "string_value"):
            properties[name] = getattr(value, kind)
    return properties


def _executions_of(metadata: GrpcWebMetadata, context_id: int):
    """Every execution of the context, page by page (ML Metadata returns 20 a page unless asked)."""
    from ml_metadata.proto import metadata_store_pb2 as store
    from ml_metadata.proto import metadata_store_service_pb2 as service

    token = ""
    for _ in range(1000):  # 100,000 executions: far more than a run of ten tasks records
        options = store.ListOperationOptions(max_result_size=PAGE_SIZE, next_page_token=token)
        page = metadata.call("GetExecutionsByContext", service.GetExecutionsByContextRequest(
            context_id=context_id, options=options))
        yield from page.executions
        token = page.next_page_token
        if not token:
            return
    raise MetadataUnavailable("ML Metadata kept answering with more pages of executions")
