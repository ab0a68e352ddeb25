"""A stand-in for the KFP 2 API server on 127.0.0.1: records requests, answers like the released one.

Only the calls ``cifar-tfx kubeflow submit`` makes are served (the v2beta1 REST paths of
``backend/api/v2beta1``): list and create experiments, create a run, get a run. Run states follow
``states`` (one per ``GET``, the last repeated). A finished run's task details are what the released
API server builds from Argo's nodes (``toModelTask``, the ``NodeStatus`` case, in
backend/src/apiserver/server/api_converter.go, 2.0.0 to 2.17.0): a display name (the spec's task name,
and ``<task>-driver`` for its driver: argocompiler/dag.go) and a state, and no inputs or outputs.

ML Metadata is served where KFP's UI serves it (``/ml_metadata.*`` proxied to Envoy,
frontend/server/app.ts): gRPC-Web, answered by a real ML Metadata store (the ``ml-metadata`` package, in
memory) that holds what the driver and launcher record for the run (backend/src/v2/metadata/client.go and
converter.go): a ``system.PipelineRun`` context named by the run id, one ``system.ContainerExecution`` per
task with ``task_name`` and ``display_name``, OUTPUT events keyed by output name, the launcher's
``executor-logs`` output on every task (2.5.0 and later), and the Pusher's ``pushed_model`` with the
custom properties TFX wrote (numbers as doubles).
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from typing import Dict, List, Optional, Sequence

TASKS = ("CifarExampleGen", "Trainer", "Evaluator", "Pusher")


def recorded_run(run_id: str, state: str, failed_task: str, pushed: Optional[int]):
    """A real in-memory ML Metadata store holding what KFP's driver and launcher record for the run."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as mlmd

    config = mlmd.ConnectionConfig()
    config.fake_database.SetInParent()
    store = metadata_store.MetadataStore(config)
    run_type = store.put_context_type(mlmd.ContextType(name="system.PipelineRun"))
    (run_context,) = store.put_contexts([mlmd.Context(type_id=run_type, name=run_id)])
    run_context = mlmd.Context(id=run_context, type_id=run_type, name=run_id)
    container_type = store.put_execution_type(mlmd.ExecutionType(name="system.ContainerExecution"))
    dag_type = store.put_execution_type(mlmd.ExecutionType(name="system.DAGExecution"))
    logs_type = store.put_artifact_type(mlmd.ArtifactType(name="system.Artifact"))
    pushed_type = store.put_artifact_type(mlmd.ArtifactType(name="tfx.PushedModel"))
    root = mlmd.Execution(type_id=dag_type, last_known_state=mlmd.Execution.COMPLETE)
    root.custom_properties["task_name"].string_value = ""
    store.put_execution(root, [], [run_context])
    for name in TASKS:
        if state == "FAILED" and TASKS.index(name) > TASKS.index(failed_task):
            break  # never started: no execution
        task_state = mlmd.Execution.FAILED if state == "FAILED" and name == failed_task else mlmd.Execution.COMPLETE
        execution = mlmd.Execution(type_id=container_type, last_known_state=task_state)
        for key in ("task_name", "display_name"):
            execution.custom_properties[key].string_value = name
        execution.custom_properties["pod_name"].string_value = f"{run_id}-{name.lower()}-system-container-impl"
        outputs = []
        uri = f"minio://mlpipeline/v2/artifacts/cifar10-resnet/{run_id}/{name}/7"
        logs = mlmd.Artifact(type_id=logs_type, uri=f"{uri}/executor-logs", state=mlmd.Artifact.LIVE)
        logs.custom_properties["display_name"].string_value = "executor-logs"
        outputs.append(("executor-logs", logs))  # recorded before the Pusher's own output
        if name == "Pusher" and task_state == mlmd.Execution.COMPLETE:
            model = mlmd.Artifact(type_id=pushed_type, uri=f"{uri}/pushed_model", state=mlmd.Artifact.LIVE)
            model.custom_properties["display_name"].string_value = "pushed_model"
            if pushed is not None:
                model.custom_properties["pushed"].double_value = float(pushed)
                if pushed:
                    model.custom_properties["pushed_version"].string_value = "3"
                    model.custom_properties["pushed_destination"].string_value = "/mnt/models/cifar10/3"
            outputs.append(("pushed_model", model))
        events = []
        for key, artifact in outputs:
            event = mlmd.Event(type=mlmd.Event.OUTPUT)
            event.path.steps.add().key = key
            events.append((artifact, event))
        store.put_execution(execution, events, [run_context])
    return store


class MetadataGrpcWeb:
    """Answers gRPC-Web calls of ``MetadataStoreService`` from a real store, with the service's status codes."""

    def __init__(self, store) -> None:
        self.store = store

    def answer(self, method: str, body: bytes):
        """``(message bytes or None, grpc status, grpc message)``."""
        from ml_metadata import errors
        from ml_metadata.proto import metadata_store_service_pb2 as service

        request_type = getattr(service, f"{method}Request", None)
        if request_type is None:
            return None, 12, f"unknown method {method}"  # UNIMPLEMENTED
        request = request_type.FromString(body[5:5 + int.from_bytes(body[1:5], "big")])
        response = getattr(service, f"{method}Response")()
        try:
            self.store._call(method, request, response)
        except errors.StatusError as err:
            return None, err.error_code, str(err)
        return response.SerializeToString(), 0, "OK"


class KfpStandIn:
    """Context manager: ``with KfpStandIn(["RUNNING", "SUCCEEDED"]) as server: server.url``."""

    def __init__(self, states: Sequence[str] = ("SUCCEEDED",), refuse_runs_with: str = "", *,
                 pushed: Optional[int] = 1, failed_task: str = "Trainer", serve_metadata: bool = True,
                 answer_gets: Optional[int] = None, run_answer: Optional[bytes] = None,
                 hang_seconds: float = 0.0) -> None:
        self.states = list(states)
        self.refuse_runs_with = refuse_runs_with  # answer POST /runs with HTTP 400 and this message
        self.pushed = pushed                      # the Pusher output's `pushed` (None: no such property)
        self.failed_task = failed_task            # the task that failed in a FAILED run
        self.serve_metadata = serve_metadata      # False: the API server's own address (no /ml_metadata)
        self.answer_gets = answer_gets            # after this many run GETs, drop every connection
        self.run_answer = run_answer              # a hostile server: POST /runs answers 200 with these bytes
        self.hang_seconds = hang_seconds          # a hung server: POST /runs accepts, then says nothing this long
        self._stopping = threading.Event()
        self.requests: List[Dict] = []
        self.run_id = "run-42"
        self.last_state = ""
        self._metadata: Optional[MetadataGrpcWeb] = None
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "KfpStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def bodies(self, method: str, path: str) -> List[Dict]:
        return [r["body"] for r in self.requests if r["method"] == method and r["path"] == path]

    def authorizations(self) -> List[str]:
        """The ``Authorization`` header of each run created, in order."""
        return [r["authorization"] for r in self.requests if r["method"] == "POST" and r["path"] == "/apis/v2beta1/runs"]

    run_gets = 0

    def task_details(self, state: str) -> List[Dict]:
        """Argo's nodes as the API server turns them into task details: names and states only. In a FAILED
        run ``failed_task`` failed and later tasks never ran."""
        if state not in ("SUCCEEDED", "FAILED"):
            return []
        details = [{"display_name": "root", "state": state, "task_id": "n0"}]
        for index, name in enumerate(TASKS):
            if state == "FAILED" and index > TASKS.index(self.failed_task):
                break
            task_state = "FAILED" if state == "FAILED" and name == self.failed_task else "SUCCEEDED"
            details.append({"display_name": f"{name}-driver", "state": "SUCCEEDED", "task_id": f"d{index}"})
            details.append({"display_name": name, "state": task_state, "task_id": f"n{index + 1}"})
        return details

    def vertex_pusher_detail(self) -> Dict:
        metadata = {} if self.pushed is None else {"pushed": self.pushed, "pushed_version": "3",
                                                   "pushed_destination": "gs://b/models/cifar10/3"}
        return {"taskName": "Pusher", "state": "SUCCEEDED", "taskId": "5",
                "outputs": {"pushed_model": {"artifacts": [{"uri": "gs://b/root/Pusher/pushed_model",
                                                            "metadata": metadata}]}}}

    def metadata(self, state: str) -> MetadataGrpcWeb:
        """ML Metadata as it stands once the run is in ``state``."""
        if self._metadata is None:
            self._metadata = MetadataGrpcWeb(recorded_run(self.run_id, state, self.failed_task, self.pushed))
        return self._metadata

    def _handler(self):
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply_grpc_web(self, message: Optional[bytes], status: int, text: str) -> None:
                trailer = f"grpc-status:{status}\r\ngrpc-message:{urllib.parse.quote(text)}\r\n".encode()
                data = b"" if message is None else b"\x00" + len(message).to_bytes(4, "big") + message
                data += b"\x80" + len(trailer).to_bytes(4, "big") + trailer
                self.send_response(200)
                self.send_header("Content-Type", "application/grpc-web+proto")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _reply(self, status: int, payload: Dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> Dict:
                url = urllib.parse.urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                binary = self.headers.get("Content-Type", "").startswith("application/grpc-web")
                record = {"method": self.command, "path": url.path, "query": urllib.parse.parse_qs(url.query),
                          "body": raw if binary else (json.loads(raw) if raw else None),
                          "authorization": self.headers.get("Authorization", "")}
                standin.requests.append(record)
                return record

            def do_GET(self) -> None:  # noqa: N802
                record = self._record()
                if record["path"] == "/apis/v2beta1/healthz":
                    self._reply(200, {"multi_user": False})
                elif record["path"] == "/apis/v2beta1/experiments":
                    self._reply(200, {"experiments": [], "total_size": 0})
                elif "/pipelineJobs/" in record["path"]:  # Vertex AI: the job's state
                    state = standin.states.pop(0) if len(standin.states) > 1 else standin.states[0]
                    job = {"name": record["path"].split("/v1/", 1)[1], "state": state}
                    if state == "PIPELINE_STATE_SUCCEEDED":  # PipelineTaskDetail: artifacts with their metadata
                        job["jobDetail"] = {"taskDetails": [standin.vertex_pusher_detail()]}
                    self._reply(200, job)
                elif record["path"].startswith("/apis/v2beta1/runs/"):
                    standin.run_gets += 1
                    if standin.answer_gets is not None and standin.run_gets > standin.answer_gets:
                        self.close_connection = True  # a dropped port-forward: no answer at all
                        return
                    state = standin.states.pop(0) if len(standin.states) > 1 else standin.states[0]
                    standin.last_state = state
                    self._reply(200, {"run_id": record["path"].rsplit("/", 1)[1], "state": state,
                                      "run_details": {"task_details": standin.task_details(state)}})
                else:
                    self._reply(404, {"error": "not found", "code": 5})

            def do_POST(self) -> None:  # noqa: N802
                record = self._record()
                if record["path"].startswith("/ml_metadata.MetadataStoreService/") and standin.serve_metadata:
                    method = record["path"].rsplit("/", 1)[1]
                    self._reply_grpc_web(*standin.metadata(standin.last_state).answer(method, record["body"]))
                elif record["path"] == "/apis/v2beta1/experiments":
                    self._reply(200, {"experiment_id": "exp-1", "display_name": record["body"]["display_name"]})
                elif record["path"] == "/apis/v2beta1/runs":
                    if standin.hang_seconds:
                        standin._stopping.wait(standin.hang_seconds)
                        return
                    if standin.run_answer is not None:
                        self.send_response(200)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(standin.run_answer)))
                        self.end_headers()
                        self.wfile.write(standin.run_answer)
                        return
                    if standin.refuse_runs_with:
                        self._reply(400, {"error": standin.refuse_runs_with, "code": 3,
                                          "message": standin.refuse_runs_with})
                        return
                    self._reply(200, {"run_id": standin.run_id, "display_name": record["body"].get("display_name"),
                                      "state": "PENDING"})
                elif record["path"].endswith("/pipelineJobs"):  # Vertex AI: create a pipeline job
                    job_id = record["query"].get("pipelineJobId", ["job-7"])[0]
                    name = record["path"].split("/v1/", 1)[1] + "/" + job_id
                    self._reply(200, {**record["body"], "name": name, "state": "PIPELINE_STATE_PENDING"})
                else:
                    self._reply(404, {"error": "not found", "code": 5})

        return Handler
